"""The stabiliser on arrays: exact recoveries, no smearing, no edge blur, and real gains on a shot."""

import numpy as np
import pytest
import torch

from bufferany_core.flow import DISFlow, FramePairs, pair_validity
from bufferany_core.stabilize import StabilizeSettings, StreamingStabilizer, stabilize_clip, stabilize_depth
from bufferany_core.stabilize.affine import remove_trend, robust_affine_fit, solve_frame_affines
from bufferany_core.testing.procedural_shot import (
    add_depth_flicker,
    add_normal_flicker,
    depth_scores,
    normal_angle,
    normal_temporal_error,
    procedural_shot,
)


def _still_pairs(frames, height, width, depth=None):
    flows = torch.zeros(frames - 1, 2, height, width)
    valid_fw, valid_bw = pair_validity(flows, flows, depth=depth)
    return FramePairs(flows, flows.clone(), valid_fw, valid_bw)


def _scene(height=32, width=40):
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    return 0.2 + 0.01 * xs + 0.005 * ys + 0.05 * torch.sin(xs / 4) * torch.cos(ys / 5)


def test_frame_affines_undo_per_frame_scale_and_shift_exactly():
    truth = _scene()[None, None].repeat(8, 1, 1, 1)
    scales = torch.tensor([1.0, 1.3, 0.7, 1.1, 0.9, 1.25, 0.8, 1.05])
    shifts = torch.tensor([0.0, 0.05, -0.03, 0.02, 0.0, -0.05, 0.04, 0.01])
    flicker = truth * scales.view(-1, 1, 1, 1) + shifts.view(-1, 1, 1, 1)
    scale, shift = solve_frame_affines(flicker, _still_pairs(8, 32, 40))
    corrected = flicker.double() * scale.view(-1, 1, 1, 1) + shift.view(-1, 1, 1, 1)
    # Every frame lands on the same map (one global affine of the truth is all that remains).
    assert (corrected - corrected.mean(0, keepdim=True)).abs().max() < 1e-5


def test_robust_fit_ignores_a_third_of_outliers():
    generator = torch.Generator().manual_seed(0)
    source = torch.rand(3000, generator=generator, dtype=torch.float64)
    target = 2.5 * source - 0.4
    target[:1000] += 5 * torch.rand(1000, generator=generator, dtype=torch.float64)  # a moving object
    scale, shift = robust_affine_fit(source, target, iterations=20)
    assert scale == pytest.approx(2.5, abs=0.02) and shift == pytest.approx(-0.4, abs=0.02)
    assert robust_affine_fit(
        torch.ones(10, dtype=torch.float64), torch.full((10,), 3.0, dtype=torch.float64)
    ) == (1.0, 2.0)


def test_trend_removal_keeps_slow_changes_and_removes_flicker():
    steady_scale, steady_shift = remove_trend(
        torch.full((30,), 1.7, dtype=torch.float64),
        torch.full((30,), 0.3, dtype=torch.float64),
        sigma_frames=5,
    )
    assert (
        torch.allclose(steady_scale, torch.ones(30, dtype=torch.float64)) and steady_shift.abs().max() < 1e-9
    )
    ramp_scale, ramp_shift = remove_trend(
        1.0 + 0.01 * torch.arange(30).double(), 0.002 * torch.arange(30).double(), sigma_frames=5
    )
    assert (
        torch.allclose(ramp_scale, torch.ones(30, dtype=torch.float64)) and ramp_shift.abs().max() < 1e-9
    )  # ends too
    alternating = 1.0 + 0.2 * (torch.arange(40) % 2 * 2 - 1).double()
    scale, _ = remove_trend(alternating, torch.zeros(40, dtype=torch.float64), sigma_frames=5)
    assert (scale[10:30] - alternating[10:30]).abs().max() < 0.01  # frame-to-frame corrections survive


def test_frame_scales_do_not_collapse_where_half_the_frame_is_sky():
    """Sky (inverse depth near 0) fits any scale: the robust fit once kept only those samples and sent
    most frames' scale to 0 (flat depth: AbsRel 2.6x the input's on a held-out miniature shot)."""
    frames, height, width = 16, 32, 40
    generator = torch.Generator().manual_seed(0)
    truth = 5 * _scene(height, width)[None, None].repeat(frames, 1, 1, 1)
    truth[:, :, : height // 2] = 1e-3
    ground = truth > 0.01
    flicker_scales = 1 + 0.1 * torch.randn(frames, generator=generator)
    noisy = truth * flicker_scales.view(-1, 1, 1, 1) + 0.1 * truth.mean() * torch.randn(truth.shape, generator=generator) * ground
    scale, shift = solve_frame_affines(noisy, _still_pairs(frames, height, width))
    assert (scale > 0.6).all() and (scale < 1.6).all(), scale
    corrected = noisy.double() * scale.view(-1, 1, 1, 1) + shift.view(-1, 1, 1, 1)
    means = torch.stack([frame[ground[k]].mean() for k, frame in enumerate(corrected)])
    assert means.std() < 0.5 * torch.stack([frame[ground[k]].mean() for k, frame in enumerate(noisy)]).std()


def test_moving_object_is_not_smeared_even_when_the_flow_misses_it():
    frames, height, width = 9, 32, 48
    depth = torch.full((frames, 1, height, width), 0.2)
    for k in range(frames):
        depth[k, :, 10:20, 4 + 3 * k : 14 + 3 * k] = 0.8  # a near square sliding right, 3 px per frame
    noisy = depth + 0.005 * torch.randn(depth.shape, generator=torch.Generator().manual_seed(0))
    # Wrong flow: zero everywhere, as if the estimator missed the object; masks without edge exclusion.
    flows = torch.zeros(frames - 1, 2, height, width)
    ones = torch.ones(frames - 1, 1, height, width, dtype=torch.bool)
    result = stabilize_depth(
        noisy,
        FramePairs(flows, flows.clone(), ones, ones.clone()),
        settings=StabilizeSettings(trend_frames=None),
    )
    assert (result.depth - depth).abs().max() < 0.05  # the range gate keeps the square where it is
    assert (result.depth - depth)[:, :, 24:].abs().mean() < 0.5 * (noisy - depth)[
        :, :, 24:
    ].abs().mean()  # background denoised


def test_depth_edges_are_not_blurred():
    frames, height, width = 6, 24, 40
    depth = torch.full((frames, 1, height, width), 0.3)
    depth[..., 20:] = 0.6
    scales = torch.linspace(0.9, 1.1, frames).view(-1, 1, 1, 1)
    flicker = depth * scales
    pairs = _still_pairs(frames, height, width, depth=flicker)
    result = stabilize_depth(flicker, pairs, settings=StabilizeSettings(trend_frames=None)).depth
    row = result[:, 0, 12]
    # Step stays one pixel wide: every frame has exactly two values across the edge.
    for k in range(frames):
        assert torch.allclose(row[k, :20], row[k, 0].expand(20), atol=1e-4)
        assert torch.allclose(row[k, 20:], row[k, -1].expand(20), atol=1e-4)


def test_normals_come_out_unit_length_steadier_and_closer_to_the_truth():
    shot = procedural_shot(frames=8, height=48, width=64)
    noisy = add_normal_flicker(shot.normals, seed=3)
    _, normals = stabilize_clip(torch.from_numpy(shot.plate), DISFlow(), normals=torch.from_numpy(noisy))
    assert torch.allclose(torch.linalg.vector_norm(normals, dim=1), torch.ones(1), atol=1e-5)
    assert normal_temporal_error(normals.numpy(), shot.normals) < 0.5 * normal_temporal_error(
        noisy, shot.normals
    )
    assert normal_angle(normals.numpy(), shot.normals) < 0.9 * normal_angle(noisy, shot.normals)


@pytest.mark.slow
def test_flickering_shot_with_moving_camera_is_stabilised():
    shot = procedural_shot(frames=16, height=64, width=88)
    flicker = add_depth_flicker(shot.inverse_depth, seed=1)
    depth, _ = stabilize_clip(torch.from_numpy(shot.plate), DISFlow(), depth=torch.from_numpy(flicker))
    te_before, absrel_before = depth_scores(flicker, shot.inverse_depth)
    te_after, absrel_after = depth_scores(depth.depth.numpy(), shot.inverse_depth)
    assert te_after < 0.5 * te_before and absrel_after <= 1.05 * absrel_before

    streaming = StreamingStabilizer(DISFlow())
    frames = [
        streaming.push(torch.from_numpy(shot.plate[k]), depth=torch.from_numpy(flicker[k]))[0]
        for k in range(16)
    ]
    streamed = torch.stack(frames).numpy()
    assert depth_scores(streamed, shot.inverse_depth)[0] < 0.5 * te_before
    assert np.isfinite(streamed).all()


def test_shapes_and_arguments_are_checked():
    pairs = _still_pairs(4, 8, 8)
    with pytest.raises(ValueError, match=r"depth must be \(4, C, 8, 8\)"):
        stabilize_depth(torch.zeros(3, 1, 8, 8), pairs)
    with pytest.raises(ValueError, match="decay"):
        StabilizeSettings(decay=1.0)
    with pytest.raises(ValueError, match="nothing to stabilise"):
        stabilize_clip(torch.zeros(4, 3, 8, 8), DISFlow())


class SeenShapes:
    """DIS flow that records the image size it was given."""

    name = "dis"

    def __init__(self) -> None:
        self.flow = DISFlow()
        self.shapes: set[tuple[int, int]] = set()

    def estimate_flow(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self.shapes.add(tuple(a.shape[-2:]))
        return self.flow.estimate_flow(a, b)


def test_the_flow_sees_an_anamorphic_plate_with_square_pixels():
    shot = procedural_shot(frames=6, height=24, width=32)
    estimator = SeenShapes()
    depth, _ = stabilize_clip(
        torch.from_numpy(shot.plate), estimator, depth=torch.from_numpy(shot.inverse_depth), pixel_aspect=2.0
    )
    assert estimator.shapes == {(24, 64)}  # desqueezed, as the render's stabiliser sees it
    assert tuple(depth.depth.shape) == (6, 1, 24, 32)  # results on the plate's grid
