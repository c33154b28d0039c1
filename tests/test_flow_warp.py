"""Backward warping: known translations warp exactly, pixels that leave the frame are invalid."""

import pytest
import torch

from bufferany_core.flow import backward_warp


def _grid(height, width):
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64), indexing="ij"
    )
    return xs, ys


def _constant_flow(dx, dy, height, width):
    flow = torch.empty(1, 2, height, width, dtype=torch.float64)
    flow[:, 0], flow[:, 1] = dx, dy
    return flow


def test_integer_shift_is_exact_and_out_of_frame_pixels_are_invalid():
    torch.manual_seed(0)
    image = torch.rand(1, 3, 20, 30, dtype=torch.float64)
    warped, valid = backward_warp(image, _constant_flow(3, -2, 20, 30))
    # x + (3, -2) stays inside for x < 27 and y >= 2 only.
    expected_valid = torch.zeros(20, 30, dtype=torch.bool)
    expected_valid[2:, :27] = True
    assert torch.equal(valid[0, 0], expected_valid)
    # Exact up to float64 rounding of grid_sample's coordinate normalisation.
    assert torch.allclose(warped[0, :, 2:, :27], image[0, :, :-2, 3:], rtol=0, atol=1e-12)
    assert torch.all(warped[0, :, ~expected_valid] == 0)


def test_subpixel_shift_of_bilinear_image_is_exact():
    xs, ys = _grid(24, 32)
    image = (0.3 * xs - 0.2 * ys + 0.01 * xs * ys)[None, None]  # bilinear: interpolation reproduces it
    dx, dy = 1.25, 0.5
    warped, valid = backward_warp(image, _constant_flow(dx, dy, 24, 32))
    sx, sy = xs + dx, ys + dy
    expected = 0.3 * sx - 0.2 * sy + 0.01 * sx * sy
    assert torch.allclose(warped[0, 0][valid[0, 0]], expected[valid[0, 0]], atol=1e-10)
    assert valid[0, 0, :23, :30].all() and not valid[0, 0, 23].any() and not valid[0, 0, :, 30:].any()


def test_subpixel_shift_of_smooth_image_matches_analytic_shift():
    xs, ys = _grid(48, 64)
    texture = lambda x, y: torch.sin(x / 5.0) * torch.cos(y / 7.0)  # noqa: E731
    warped, valid = backward_warp(texture(xs, ys)[None, None], _constant_flow(0.4, -0.7, 48, 64))
    expected = texture(xs + 0.4, ys - 0.7)
    # Bilinear interpolation error is at most h^2/8 * max|f''| = 1/8 * (1/25 + 1/49) < 0.008.
    assert (warped[0, 0] - expected)[valid[0, 0]].abs().max() < 0.008


def test_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="flow"):
        backward_warp(torch.zeros(1, 1, 8, 8), torch.zeros(1, 2, 8, 9))
    with pytest.raises(ValueError, match=r"\(B, 2, H, W\)"):
        backward_warp(torch.zeros(1, 1, 8, 8), torch.zeros(1, 3, 8, 8))
