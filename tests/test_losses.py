"""L_reg and L_stable: invariances with exact answers, masking, and gradients."""

import pytest
import torch

from bufferany_core.flow import pair_validity
from bufferany_core.losses import (
    affine_invariant_normalize,
    depth_regularization_loss,
    normal_latent_loss,
    stable_loss,
)


@pytest.mark.parametrize("scale,shift", [(1.0, 0.0), (0.01, 5.0), (3.7, -2.0), (250.0, 1e3)])
def test_affine_invariant_loss_is_zero_for_any_positive_scale_and_shift(scale, shift):
    torch.manual_seed(0)
    depth = torch.rand(2, 3, 1, 16, 20, dtype=torch.float64)
    loss = depth_regularization_loss(scale * depth + shift, depth)
    assert loss.item() == pytest.approx(0.0, abs=1e-18)


def test_affine_invariant_loss_detects_a_different_map_and_a_flipped_one():
    torch.manual_seed(1)
    depth = torch.rand(1, 1, 1, 16, 20, dtype=torch.float64)
    assert depth_regularization_loss(-depth, depth) > 1.0  # negative scale is not invariant
    assert depth_regularization_loss(depth.square(), depth) > 1e-3


def test_normalisation_uses_median_and_mean_absolute_deviation():
    depth = torch.tensor(
        [[1.0, 2.0], [3.0, 10.0]]
    )  # median 2.5, mean |D - t| = (1.5 + 0.5 + 0.5 + 7.5) / 4 = 2.5
    expected = (depth - 2.5) / 2.5
    # torch.median returns the lower middle value for an even count: t = 2, s = (1 + 0 + 1 + 8) / 4 = 2.5
    lower = (depth - 2.0) / 2.5
    result = affine_invariant_normalize(depth)
    assert torch.allclose(result, lower) and not torch.allclose(result, expected)


def test_normal_latent_loss_is_mean_squared_error():
    a = torch.zeros(1, 2, 4, 8, 8)
    b = torch.full_like(a, 3.0)
    assert normal_latent_loss(a, b).item() == 9.0
    with pytest.raises(ValueError, match="differ in shape"):
        normal_latent_loss(a, b[:, :1])


def _translating_clip(frames=3, shift=2, height=12, width=20):
    """A texture moving `shift` px right per frame, with its exact flows and cycle masks."""
    torch.manual_seed(2)
    texture = torch.rand(1, height, width + shift * frames)
    video = torch.stack(
        [texture[:, :, shift * (frames - k) : shift * (frames - k) + width] for k in range(frames)]
    )
    fw = torch.zeros(frames - 1, 2, height, width)
    fw[:, 0] = shift
    bw = -fw
    valid_fw, valid_bw = pair_validity(fw, bw)
    return video[None], fw[None], bw[None], valid_fw[None], valid_bw[None]


def test_stable_loss_is_zero_for_a_consistent_video_and_exact_for_a_flickering_one():
    video, fw, bw, valid_fw, valid_bw = _translating_clip()
    assert stable_loss(video, fw, bw, valid_fw, valid_bw).item() == pytest.approx(0.0, abs=1e-6)
    flicker = video.clone()
    flicker[:, 1] += 0.25  # frame 1 brighter: every valid pair involving it is off by exactly 0.25
    assert stable_loss(flicker, fw, bw, valid_fw, valid_bw).item() == pytest.approx(0.25, abs=1e-6)


def test_stable_loss_ignores_masked_pixels_and_has_gradients():
    video, fw, bw, valid_fw, valid_bw = _translating_clip()
    corrupted = video.clone()
    corrupted[:, 1, :, :, 5] = 100.0  # a column that the masks exclude below
    valid_fw[:, 0, :, :, 3] = False  # frame 0's x = 3 samples frame 1's x = 5
    valid_bw[:, 0, :, :, 5] = False  # frame 1's own x = 5
    valid_fw[:, 1, :, :, 5] = False  # frame 1's own x = 5
    valid_bw[:, 1, :, :, 7] = False  # frame 2's x = 7 samples frame 1's x = 5
    prediction = corrupted.requires_grad_(True)
    loss = stable_loss(prediction, fw, bw, valid_fw, valid_bw)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)
    loss.backward()
    assert prediction.grad is not None and torch.isfinite(prediction.grad).all()


def test_stable_loss_with_nothing_valid_is_zero_and_shapes_are_checked():
    video, fw, bw, valid_fw, valid_bw = _translating_clip()
    nothing = torch.zeros_like(valid_fw)
    assert stable_loss(video + torch.rand_like(video), fw, bw, nothing, nothing).item() == 0.0
    with pytest.raises(ValueError, match="flows_fw"):
        stable_loss(video, fw[:, :1], bw, valid_fw, valid_bw)
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        stable_loss(video[0], fw, bw, valid_fw, valid_bw)
