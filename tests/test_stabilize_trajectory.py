"""The long-range trajectory filter (stabilize.trajectory) and the render's shot stabiliser around it."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bufferany_core.pipeline.stabilizing import STABILIZE_WINDOW, ShotStabilizer
from bufferany_core.stabilize.trajectory import (
    PairCorrespondence,
    TrajectorySettings,
    filter_clips,
    normal_edges,
    trajectories,
)

H, W = 24, 32


def still_pairs(frames: int, shift: float = 0.0) -> list[PairCorrespondence]:
    """Pairs of a plate sliding `shift` px right per frame, every correspondence valid."""
    fw = np.zeros((H, W, 2), np.float32)
    fw[..., 0] = shift
    ok = np.ones((H, W), bool)
    return [PairCorrespondence(fw, -fw, ok, ok) for _ in range(frames - 1)]


def test_trajectories_follow_the_flow_and_stop_outside_the_frame():
    paths = trajectories(dict(enumerate(still_pairs(9, shift=2.0))), 9, 4, radius=3)
    assert paths.offsets.tolist() == [-3, -2, -1, 0, 1, 2, 3] and paths.own == 3
    plus_two = list(paths.offsets).index(2)
    np.testing.assert_allclose(paths.x[plus_two][0, :3], [4.0, 5.0, 6.0])
    assert not paths.alive[plus_two][:, -4:].any() and paths.alive[plus_two][:, :-4].all()


def test_a_pop_goes_and_a_drift_averages_out():
    rng = np.random.default_rng(0)
    frames = 25
    truth = np.linspace(1.0, 2.0, W, dtype=np.float32)[None].repeat(H, 0)
    drift = np.cumsum(rng.normal(0, 0.02, frames))  # a slow wander common to the frame
    clip = [(truth + d + rng.normal(0, 0.005, (H, W))).astype(np.float32)[..., None] for d in drift]
    clip[12][4:12, 8:20] += 0.5  # a pop on the middle frame
    (out,) = filter_clips([(clip, False)], still_pairs(frames), TrajectorySettings(radius=12))
    error_in = np.abs(clip[12][..., 0] - truth - drift.mean())
    error_out = np.abs(out[12][..., 0] - truth - drift.mean())
    assert error_in[4:12, 8:20].mean() > 0.4 and error_out[4:12, 8:20].mean() < 0.05
    assert error_out.mean() < 0.5 * np.abs(clip[0][..., 0] - truth - drift.mean()).mean()


def test_pixels_whose_trajectories_are_cut_lose_the_flicker_their_neighbours_lose():
    rng = np.random.default_rng(2)
    frames = 25
    truth = np.linspace(1.0, 2.0, W, dtype=np.float32)[None].repeat(H, 0)
    drift = np.cumsum(rng.normal(0, 0.03, frames))  # a slow wander common to the frame
    clip = [(truth + d + rng.normal(0, 0.005, (H, W))).astype(np.float32)[..., None] for d in drift]
    pairs = still_pairs(frames)
    band = np.ones((H, W), bool)
    band[:, 14:18] = False  # an edge band: no correspondence is trusted there
    pairs = [PairCorrespondence(p.fw, p.bw, band.copy(), band.copy()) for p in pairs]
    (out,) = filter_clips([(clip, False)], pairs, TrajectorySettings(radius=12))
    # the band's offset from the truth against what its neighbours, whose trajectories run, came out at
    offset = np.concatenate([(out[12][..., 0] - truth)[:, 8:12], (out[12][..., 0] - truth)[:, 20:24]]).mean()
    error_in = abs((clip[12][:, 14:18, 0] - truth[:, 14:18]).mean() - offset)
    error_out = abs((out[12][:, 14:18, 0] - truth[:, 14:18]).mean() - offset)
    assert error_in > 0.005 and error_out < 0.1 * error_in, (error_in, error_out)


def test_normal_edges_find_a_crease_not_the_noise():
    normals = np.zeros((H, W, 3), np.float32)
    normals[:, : W // 2] = [0, 0, 1]
    normals[:, W // 2 :] = [np.sin(0.6), 0, np.cos(0.6)]  # a 34 degree crease
    normals += np.random.default_rng(1).normal(0, 0.03, normals.shape).astype(np.float32)
    normals /= np.linalg.norm(normals, axis=2, keepdims=True)
    edges = normal_edges(normals)
    assert edges[:, W // 2 - 1 : W // 2 + 1].all()
    assert edges[:, : W // 2 - 3].mean() < 0.02 and edges[:, W // 2 + 3 :].mean() < 0.02


class CountingFlow:
    name = "counting"

    def __init__(self) -> None:
        self.calls = 0

    def estimate_flow(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self.calls += a.shape[0]
        return torch.zeros(a.shape[0], 2, *a.shape[-2:])


def test_each_pair_flow_is_computed_once_per_shot():
    frames = 100  # overlapping stabiliser windows
    estimator = CountingFlow()
    stabilizer = ShotStabilizer(frames, ["depth", "normal"], estimator, torch.device("cpu"))
    rng = np.random.default_rng(0)
    done = []
    for k in range(frames):
        normals = rng.normal(0, 0.05, (3, 12, 16)) + np.array([0, 0, 1.0])[:, None, None]
        plate = SimpleNamespace(rgb=rng.random((12, 16, 3)).astype(np.float32))
        done += [p for p, *_ in stabilizer.push(k, plate, rng.random((12, 16)), normals / np.linalg.norm(normals, axis=0))]
        # the filter's support and one alignment window's worth, whatever the length
        bound = 2 * stabilizer.trajectory.radius + STABILIZE_WINDOW
        assert len(stabilizer.pairs) <= bound and len(stabilizer.frames) <= bound + 1
    assert done == list(range(frames))
    assert estimator.calls == 2 * (frames - 1)  # forward and backward flow of each adjacent pair, once


def high_pass_energy(frame: np.ndarray) -> float:
    """Mean squared fine detail (the frame minus its 1.5 px Gaussian blur) of an (H, W) or (H, W, C) frame."""
    import cv2

    return float(np.square(frame - cv2.GaussianBlur(frame, (0, 0), 1.5).reshape(frame.shape)).mean())


@pytest.mark.parametrize("frames", [21, 48])  # a shot shorter than a full support (33 frames), a longer one
def test_fine_detail_is_kept_at_the_shot_ends_as_in_the_middle(frames):
    """A static textured pass (depth, and normals with fine relief) under flicker that is smooth in space
    (a per-frame offset and tilt drifting over the shot): the filter takes the flicker out and keeps
    the texture, at the first and last frames as in the middle (shot ends used to be blended with a
    spatial denoise, which smoothed the texture away)."""
    rng = np.random.default_rng(4)
    import cv2

    texture = cv2.GaussianBlur(rng.standard_normal((H, W)).astype(np.float32), (0, 0), 0.7)
    depth = 1.0 + np.linspace(0.0, 1.0, W, dtype=np.float32)[None] + 0.05 * texture
    gy, gx = np.gradient(3.0 * texture)
    relief = np.dstack([-gx, -gy, np.ones_like(gx)]).astype(np.float32)
    drift = np.cumsum(rng.normal(0, 0.03, (frames, 3)), axis=0)
    clip = [(depth + d[0])[..., None].astype(np.float32) for d in drift]
    tilted = [relief + np.array([d[1], d[2], 0.0], np.float32) for d in drift]
    normals = [n / np.linalg.norm(n, axis=2, keepdims=True) for n in tilted]
    out_depth, out_normals = filter_clips([(clip, False), (normals, True)], still_pairs(frames), TrajectorySettings())
    for k in (0, frames // 2, frames - 1):
        for name, given, got in (("depth", clip, out_depth), ("normals", normals, out_normals)):
            kept = high_pass_energy(got[k]) / high_pass_energy(given[k])
            assert 0.95 <= kept <= 1.05, (name, k, kept)
    # and the flicker went: the depth's offset from the texture changes far less from frame to frame
    offsets = np.array([float((o[..., 0] - depth).mean()) for o in out_depth])
    assert np.abs(np.diff(offsets)).mean() < 0.25 * np.abs(np.diff(drift[:, 0])).mean()


def test_a_one_frame_shot_comes_back_as_it_is():
    stabilizer = ShotStabilizer(1, ["depth", "normal"], CountingFlow(), torch.device("cpu"))
    rng = np.random.default_rng(5)
    depth = rng.random((12, 16))
    normals = rng.normal(0, 0.05, (3, 12, 16)) + np.array([0, 0, 1.0])[:, None, None]
    normals /= np.linalg.norm(normals, axis=0)
    ((position, _, out_depth, out_normals),) = stabilizer.push(0, SimpleNamespace(rgb=rng.random((12, 16, 3))), depth, normals)
    assert position == 0
    np.testing.assert_allclose(out_depth, depth, rtol=1e-6)
    np.testing.assert_allclose(out_normals, normals, atol=1e-6)


def _numpy_fit(samples, valid, own, settings):
    """The robust trajectory fit stated in whole-array numpy (the stabiliser's algorithm 5, before it
    was compiled): the oracle the compiled fit must reproduce to the last bit."""
    from bufferany_core.stabilize.robust_fit import robust_sigma

    def tukey(residual, sigma):
        return np.square(np.clip(1.0 - np.square(residual * np.float32(1.0 / (settings.outlier_k * sigma))), 0.0, None))

    def distance(a, b):
        return np.abs(a - b)[:, 0] if a.shape[1] == 1 else np.sqrt(np.square(a - b).sum(1))

    def line(weights, values):
        s0, s1, s2 = (np.zeros(values.shape[2:], np.float32) for _ in range(3))
        y0, y1 = np.zeros(values.shape[1:], np.float32), np.zeros(values.shape[1:], np.float32)
        for i, weight in enumerate(weights):
            s0 += weight
            s1 += weight * t[i]
            s2 += weight * t[i] * t[i]
            y0 += values[i] * weight
            y1 += values[i] * weight * t[i]
        s2 += np.float32(settings.ridge(settings.radius))
        det = s0 * s2 - s1 * s1
        return (s2 * y0 - s1 * y1) / det, (s0 * y1 - s1 * y0) / det

    n = len(samples)
    t = (np.arange(n) - own).astype(np.float32)
    coarse, ok = samples[:, :, ::2, ::2], valid[:, ::2, ::2]
    floor = 1e-6 * float(np.abs(samples[own]).mean())
    median = np.empty_like(coarse)
    for i in range(n):
        near = [np.where(ok[j], coarse[j], coarse[i]) if 0 <= j < n else coarse[i] for j in (i - 2, i - 1, i + 1, i + 2)]
        low = np.maximum(np.minimum(near[0], near[1]), np.minimum(near[2], near[3]))
        high = np.minimum(np.maximum(near[0], near[1]), np.maximum(near[2], near[3]))
        median[i] = (low + high) * np.float32(0.5)
    pop = distance(coarse, median)
    base = tukey(pop, robust_sigma(pop, ok & (pop > 0), floor)) * ok
    base[own] = np.maximum(base[own], np.float32(1e-3))
    value, slope = line(base, coarse)
    residual = distance(coarse, value[None] + t[:, None, None, None] * slope[None])
    weights = tukey(residual, robust_sigma(residual, base > 0, floor)) * base
    height, width = samples.shape[2:]
    full = [np.repeat(np.repeat(w, 2, 0), 2, 1)[:height, :width] * v for w, v in zip(weights, valid, strict=True)]
    full[own] = np.maximum(full[own], np.float32(1e-3))
    return line(full, samples)[0]


@pytest.mark.parametrize("channels", [slice(0, 1), slice(1, 4), slice(0, 3)])
def test_the_compiled_fit_gives_the_numbers_of_its_numpy_statement(channels):
    """The compiled fit does the numpy statement's float32 operations in the same order: the same
    numbers to the last bit, for one pass's channels of a stack (odd sizes: part-filled 2 x 2 blocks),
    a pop and cut trajectories in it."""
    from bufferany_core.stabilize.robust_fit import robust_trajectory_fit

    rng = np.random.default_rng(5)
    n, height, width = 9, 23, 17
    samples = (1.0 + rng.normal(0, 0.05, (n, 4, height, width))).astype(np.float32)
    samples[3, :, 5:11, 2:9] += 0.8  # a pop
    valid = rng.random((n, height, width)) > 0.15
    settings = TrajectorySettings(radius=4)
    fitted = robust_trajectory_fit(
        samples, np.ascontiguousarray(samples[:, :, ::2, ::2]), channels, valid, 4,
        ridge=settings.ridge(settings.radius), outlier_k=settings.outlier_k, iterations=settings.iterations,
    )
    assert np.abs(fitted[:, 5:11, 2:9] - 1.0).mean() < 0.1  # the pop is gone
    np.testing.assert_array_equal(fitted, _numpy_fit(np.ascontiguousarray(samples[:, channels]), valid, 4, settings))


def test_the_fit_and_the_trace_give_the_same_numbers_on_one_thread_or_several():
    """Farm machines differ in cores: a frame's numbers must not depend on how many threads numba has
    (each row is computed alone), or chunks rendered on different machines would not agree."""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("needs 2 CPU cores for numba's threads")
    rng = np.random.default_rng(9)
    frames, shift = 9, 1.5
    depth = [(1.0 + rng.normal(0, 0.05, (H, W, 1))).astype(np.float32) for _ in range(frames)]
    normals = [n / np.linalg.norm(n, axis=-1, keepdims=True) for n in ((0, 0, 1) + rng.normal(0, 0.1, (frames, H, W, 3))).astype(np.float32)]
    results = []
    for threads in (1, 2):
        numba.set_num_threads(threads)
        try:
            clips = [(depth, False), (normals, True)]
            results.append(filter_clips(clips, still_pairs(frames, shift=shift), TrajectorySettings(radius=4)))
        finally:
            numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    for one, several in zip(*results, strict=True):
        for a, b in zip(one, several, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "change, field",
    [
        (lambda a: {**a, "valid": a["valid"][:, 1:]}, "valid"),
        (lambda a: {**a, "coarse": a["coarse"][:, :, 1:]}, "coarse"),
        (lambda a: {**a, "channels": slice(0, 4, 2)}, "channels"),
        (lambda a: {**a, "own": 9}, "own"),
        (lambda a: {**a, "samples": a["samples"].astype(np.float64)}, "float32"),
    ],
)
def test_the_compiled_fit_refuses_shapes_its_kernels_would_read_past(change, field):
    """The kernels do not check their indices (an out-of-range read is silent garbage or a crash), so
    every shape is checked before them, with a message naming what is wrong."""
    from bufferany_core.stabilize.robust_fit import robust_trajectory_fit

    samples = np.ones((9, 4, 7, 5), np.float32)
    given = {"samples": samples, "coarse": np.ascontiguousarray(samples[:, :, ::2, ::2]), "channels": slice(1, 4),
             "valid": np.ones((9, 7, 5), bool), "own": 4}
    with pytest.raises(ValueError, match=field):
        robust_trajectory_fit(**change(given), ridge=1.0, outlier_k=4.685, iterations=2)
