"""Backward warping by optical flow, with out-of-frame pixels marked invalid instead of clamped."""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Sample positions may overshoot the last pixel centre by float rounding only; beyond that they are out.
_EDGE_TOLERANCE = 1e-3


def backward_warp(
    image: torch.Tensor, flow: torch.Tensor, *, mode: str = "bilinear"
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample `image` (B, C, H, W) at x + flow(x), flow (B, 2, H, W) in pixels (channel 0 = x).

    With `flow` the flow from frame a to frame b and `image` frame b, the result is frame b seen
    on frame a's grid. Returns `(warped (B, C, H, W), valid (B, 1, H, W) bool)`: `valid` is False
    where the sample position lies outside the pixel centres of `image` (a pixel that leaves the
    frame has nothing to be compared with); those pixels of `warped` are 0.
    """
    if image.ndim != 4:
        raise ValueError(f"image must be (B, C, H, W), got {tuple(image.shape)}")
    if flow.ndim != 4 or flow.shape[1] != 2:
        raise ValueError(f"flow must be (B, 2, H, W), got {tuple(flow.shape)}")
    if flow.shape[0] != image.shape[0] or flow.shape[-2:] != image.shape[-2:]:
        raise ValueError(f"flow {tuple(flow.shape)} does not match image {tuple(image.shape)}")
    batch, _, height, width = image.shape
    ys, xs = torch.meshgrid(
        torch.arange(height, device=flow.device, dtype=flow.dtype),
        torch.arange(width, device=flow.device, dtype=flow.dtype),
        indexing="ij",
    )
    sample_x = xs + flow[:, 0]  # (B, H, W)
    sample_y = ys + flow[:, 1]
    valid = (
        (sample_x >= -_EDGE_TOLERANCE)
        & (sample_x <= width - 1 + _EDGE_TOLERANCE)
        & (sample_y >= -_EDGE_TOLERANCE)
        & (sample_y <= height - 1 + _EDGE_TOLERANCE)
    ).unsqueeze(1)  # (B, 1, H, W)
    # align_corners=True maps -1 and 1 to the centres of the first and last pixels.
    grid = torch.stack(
        [2.0 * sample_x / max(width - 1, 1) - 1.0, 2.0 * sample_y / max(height - 1, 1) - 1.0], dim=-1
    )  # (B, H, W, 2)
    warped = F.grid_sample(image, grid.to(image.dtype), mode=mode, padding_mode="border", align_corners=True)
    return warped * valid.to(warped.dtype), valid
