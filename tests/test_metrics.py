"""Metrics on cases whose answers are known exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bufferany_core.conventions import DepthConvention
from bufferany_core.evaluation import metrics

RNG = np.random.default_rng(0)
GT = RNG.uniform(1.0, 10.0, size=(4, 6, 8))  # (T, H, W) metric depth
K = np.array([[50.0, 0.0, 16.0], [0.0, 50.0, 12.0], [0.0, 0.0, 1.0]])  # 32x24 image


# --- Depth accuracy -----------------------------------------------------------------------------------
def test_perfect_prediction():
    result = metrics.depth_accuracy(1.0 / GT, GT)
    assert result["abs_rel"] == pytest.approx(0.0, abs=1e-12)
    assert result["delta1"] == 1.0
    assert result["abs_rel_per_frame"] == pytest.approx([0.0] * 4, abs=1e-12)


def test_scale_and_shift_in_disparity_costs_nothing():
    result = metrics.depth_accuracy(3.0 / GT - 0.1, GT)
    assert result["abs_rel"] == pytest.approx(0.0, abs=1e-9)
    assert (result["scale"], result["shift"]) == pytest.approx((1 / 3, 0.1 / 3))


def test_distance_convention_is_inverted_before_the_fit():
    result = metrics.depth_accuracy(2.0 * GT, GT, convention=DepthConvention.DISTANCE)
    assert result["abs_rel"] == pytest.approx(0.0, abs=1e-9)


def test_one_fit_per_shot_not_per_frame():
    """A prediction right in every frame up to a per-frame scale is wrong for the shot."""
    flicker = (1.0 / GT) * np.array([1.0, 2.0, 1.0, 2.0])[:, None, None]
    assert metrics.depth_accuracy(flicker, GT)["abs_rel"] > 0.1


def test_hand_computed_case():
    # gt depth 1, 2, 4 (disparity 1, 1/2, 1/4); predicted disparity 1, 1/2, 1/2. Least squares:
    # scale 5/4, shift -1/4 -> disparity 1, 3/8, 3/8 -> depth 1, 8/3, 8/3.
    gt = np.array([[[1.0, 2.0, 4.0]]])
    result = metrics.depth_accuracy(np.array([[[1.0, 0.5, 0.5]]]), gt)
    assert (result["scale"], result["shift"]) == pytest.approx((1.25, -0.25))
    assert result["abs_rel"] == pytest.approx((0 + (2 / 3) / 2 + (4 / 3) / 4) / 3)
    assert result["delta1"] == pytest.approx(1 / 3)  # ratios 1, 4/3, 3/2


def test_aligned_disparity_is_clipped_to_the_depth_range():
    gt = np.array([[[1.0, 2.0, 4.0]]])
    depth, _, _ = metrics.align_depth(np.array([[[1.0, 0.5, 0.5]]]), gt, depth_range=(1.5, 2.5))
    np.testing.assert_allclose(depth, [[[1.5, 2.5, 2.5]]])


def test_invalid_pixels_are_ignored():
    prediction = 1.0 / GT
    prediction[0, 0, 0] = np.nan
    broken = prediction.copy()
    broken[1, 2, 3] = 1e6
    valid = np.ones(GT.shape, bool)
    valid[1, 2, 3] = False
    assert metrics.depth_accuracy(broken, GT, valid)["abs_rel"] == pytest.approx(0.0, abs=1e-9)


def test_shape_errors_name_the_argument():
    with pytest.raises(ValueError, match="prediction"):
        metrics.depth_accuracy(np.ones((4, 6, 7)), GT)
    with pytest.raises(ValueError, match="valid"):
        metrics.depth_accuracy(1.0 / GT, GT, np.ones((4, 6), bool))
    with pytest.raises(ValueError, match="no valid pixel"):
        metrics.depth_accuracy(1.0 / GT, GT, np.zeros(GT.shape, bool))


def test_temporal_gradient_error():
    assert metrics.temporal_gradient_error(GT, GT) == 0.0
    gt = np.full((2, 1, 1), 2.0)
    assert metrics.temporal_gradient_error(np.array([[[2.0]], [[2.2]]]), gt) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="2 frames"):
        metrics.temporal_gradient_error(GT[:1], GT[:1])


# --- Camera geometry ----------------------------------------------------------------------------------
def _pose(x=0.0, z=0.0) -> np.ndarray:
    pose = np.eye(4)
    pose[0, 3], pose[2, 3] = x, z
    return pose


def test_reproject_depth_moves_pixels_by_the_parallax():
    # A wall 5 m away; moving the camera 0.3 m right shifts it 50 * 0.3 / 5 = 3 px left. Column 20
    # is a post 4 m away: it shifts 3.75 px, from centre 20.5 to 16.75, i.e. onto column 16, where
    # it hides the wall from column 19, and leaves column 17 (where column 20's wall would go) empty.
    depth = np.full((24, 32), 5.0)
    depth[:, 20] = 4.0
    moved = metrics.reproject_depth(depth, np.ones(depth.shape, bool), _pose(), _pose(x=0.3), K)
    assert np.all(np.isnan(moved[:, 29:]))  # nothing comes in from beyond the right edge
    np.testing.assert_array_equal(moved[:, 16], 4.0)
    assert np.all(np.isnan(moved[:, 17]))
    np.testing.assert_allclose(moved[:, np.r_[0:16, 18:29]], 5.0)


def test_tae_of_exact_depth_is_zero_and_of_stale_depth_is_known():
    # Camera backs off 0.5 m from a wall 5 m away: true depths 5 then 5.5.
    poses = np.stack([_pose(), _pose(z=0.5)])
    truth = np.stack([np.full((24, 32), 5.0), np.full((24, 32), 5.5)])
    assert metrics.temporal_alignment_error(truth, poses, K) == pytest.approx(0.0, abs=1e-12)
    stale = np.full((2, 24, 32), 5.0)  # both frames say 5: off by 0.5 / 5 either way
    assert metrics.temporal_alignment_error(stale, poses, K) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="camera_to_world"):
        metrics.temporal_alignment_error(truth, poses[:1], K)


# --- Normal accuracy ----------------------------------------------------------------------------------
def _normals_at(angles_deg) -> np.ndarray:
    a = np.radians(np.asarray(angles_deg, float))
    return np.stack([np.sin(a), np.zeros_like(a), np.cos(a)], axis=-1)


def test_normals_perfect_and_constant_90_degrees():
    gt = np.broadcast_to([0.0, 0.0, 1.0], (2, 3, 4, 3))
    perfect = metrics.normal_accuracy(5.0 * gt, gt)  # length does not matter
    assert perfect["mean_angle"] == pytest.approx(0.0, abs=1e-6) and perfect["within_11.25"] == 1.0
    wrong = metrics.normal_accuracy(np.broadcast_to([1.0, 0.0, 0.0], gt.shape), gt)
    assert wrong["mean_angle"] == pytest.approx(90.0) and wrong["median_angle"] == pytest.approx(90.0)
    assert wrong["within_11.25"] == wrong["within_22.5"] == wrong["within_30"] == 0.0


def test_normals_hand_computed_case():
    prediction = _normals_at([[[0.0, 10.0, 20.0, 45.0]]])
    gt = _normals_at(np.zeros((1, 1, 4)))
    result = metrics.normal_accuracy(prediction, gt)
    assert result["mean_angle"] == pytest.approx(18.75)
    assert result["median_angle"] == pytest.approx(15.0)
    assert (result["within_11.25"], result["within_22.5"], result["within_30"]) == (0.5, 0.75, 0.75)


# --- OPW ----------------------------------------------------------------------------------------------
H, W = 12, 16


def _still(values: np.ndarray, frames: int = 2) -> np.ndarray:
    return np.repeat(values[None], frames, axis=0)


def test_depth_opw_is_invariant_to_per_frame_affine_changes():
    depth = RNG.uniform(1, 5, (H, W))
    frames = _still(RNG.uniform(0, 1, (H, W, 3)))
    flows = np.zeros((1, H, W, 2))
    prediction = np.stack([depth, 3.0 * depth + 7.0])
    assert metrics.depth_opw(prediction, frames, flows) == pytest.approx(0.0, abs=1e-9)


def test_depth_opw_known_value_and_colour_weight():
    depth = RNG.uniform(1, 5, (H, W))
    flows = np.zeros((1, H, W, 2))
    flipped = np.stack([depth, -depth])  # normalised n and -n, n with mean |n| = 1: error 2
    frames = _still(RNG.uniform(0, 0.8, (H, W, 3)))
    assert metrics.depth_opw(flipped, frames, flows) == pytest.approx(2.0)
    frames[1] += 0.1  # colour no longer follows the flow: weight exp(-50 * 3 * 0.01)
    assert metrics.depth_opw(flipped, frames, flows) == pytest.approx(2.0 * math.exp(-1.5))


def test_depth_opw_follows_the_flow():
    """Content moving 2 px right: with the true flow OPW is 0, without it it is not."""
    texture = RNG.uniform(0, 1, (H, W, 3))
    depth = RNG.uniform(1, 5, (H, W))
    # Frame 1 at x shows frame 0 at x - 2 (wrapping round, so both frames hold the same values
    # and the per-frame normalisation is the same).
    frames = np.stack([texture, np.roll(texture, 2, axis=1)])
    prediction = np.stack([depth, np.roll(depth, 2, axis=1)])
    flow = np.zeros((1, H, W, 2))
    flow[..., 0] = -2.0  # from frame 1 back to frame 0
    assert metrics.depth_opw(prediction, frames, flow) == pytest.approx(0.0, abs=1e-6)
    assert metrics.depth_opw(prediction, frames, np.zeros_like(flow)) > 0.01


def test_normal_opw():
    normals = _still(_normals_at(RNG.uniform(0, 60, (H, W))))
    frames = _still(RNG.uniform(0, 1, (H, W, 3)))
    flows = np.zeros((1, H, W, 2))
    assert metrics.normal_opw(normals, frames, flows) == pytest.approx(0.0, abs=1e-6)
    turned = normals.copy()
    turned[1] = np.broadcast_to([0.0, 1.0, 0.0], (H, W, 3))  # 90 degrees from every frame-0 normal
    assert metrics.normal_opw(turned, frames, flows) == pytest.approx(math.sqrt(2))


def test_opw_checks_flow_shape():
    with pytest.raises(ValueError, match="flows"):
        metrics.depth_opw(np.ones((2, H, W)), np.zeros((2, H, W, 3)), np.zeros((2, H, W, 2)))
