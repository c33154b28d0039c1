"""The pieces of L_stable training shares between depth and normals: validity masks with each part
switchable (for ablations), and the flow-warping error used as the temporal metric."""

from __future__ import annotations

import torch

from bufferany_core.flow import depth_edge_mask, pair_validity
from bufferany_core.losses import affine_invariant_normalize, stable_loss


def stable_validity(
    flows_fw: torch.Tensor,
    flows_bw: torch.Tensor,
    *,
    depth: torch.Tensor | None,
    tau: float,
    cycle: bool,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validity (B, T-1, 1, h, w) bool, forward and backward, for flows (B, T-1, 2, h, w).

    `cycle` applies the forward-backward check within `tau` pixels; `depth` (B, T, 1, h, w), when
    given, excludes pixels near its Canny edges. With neither, every pixel is valid (pixels that
    flow out of the frame are still dropped by the loss)."""
    batch, pairs, _, height, width = flows_fw.shape
    if cycle:
        masks = [
            pair_validity(fw_clip, bw_clip, depth=None if depth is None else depth[b], tau=tau)
            for b, (fw_clip, bw_clip) in enumerate(zip(flows_fw, flows_bw, strict=True))
        ]
        valid_fw = torch.stack([m[0] for m in masks])
        valid_bw = torch.stack([m[1] for m in masks])
        return valid_fw, valid_bw
    valid = torch.ones((batch, pairs, 1, height, width), dtype=torch.bool, device=flows_fw.device)
    if depth is None:
        return valid, valid
    far = depth_edge_mask(depth.flatten(0, 1)).unflatten(0, depth.shape[:2])  # (B, T, 1, h, w)
    return valid & far[:, :-1], valid & far[:, 1:]


def clip_normalize(depth: torch.Tensor) -> torch.Tensor:
    """(B, T, h, w) -> the same with one shift (median) and scale (mean absolute deviation) per
    clip, so L_stable measures flicker relative to the clip's depth range and cannot be lowered by
    shrinking the whole prediction (which the affine-invariant L_reg would not notice)."""
    if depth.ndim != 4:
        raise ValueError(f"depth must be (B, T, h, w), got {tuple(depth.shape)}")
    # L_reg's per-map normalisation, with the clip's T frames stacked into one (T*h, w) map.
    return affine_invariant_normalize(depth.flatten(1, 2)).view_as(depth)


@torch.no_grad()
def warp_error(
    prediction: torch.Tensor,
    flows_fw: torch.Tensor,
    flows_bw: torch.Tensor,
    valid_fw: torch.Tensor,
    valid_bw: torch.Tensor,
) -> torch.Tensor:
    """The temporal metric logged during training: L_stable's value without gradient."""
    return stable_loss(prediction.float(), flows_fw, flows_bw, valid_fw, valid_bw)


def coverage(valid_fw: torch.Tensor, valid_bw: torch.Tensor) -> torch.Tensor:
    """Share of pixels L_stable uses."""
    return (valid_fw.float().mean() + valid_bw.float().mean()) / 2
