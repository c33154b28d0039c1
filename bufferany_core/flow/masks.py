"""Which pixels a flow correspondence can be trusted at: cycle check and depth-edge exclusion.

Both follow Buffer Anytime's L_stable: a pixel counts when the forward-backward cycle returns
within `tau_c` pixels and it is not within Manhattan distance < 3 of a Canny edge of the
predicted depth.
"""

from __future__ import annotations

import numpy as np
import torch

from bufferany_core.flow.warp import backward_warp

# Default cycle tolerance, in pixels. Forward and backward estimates each carry sub-pixel errors on
# visible, textured surfaces (DIS and RAFT both stay well under 0.5 px there), so a visible pixel's
# round trip lands within about 1 px; an occluded pixel's round trip lands on the occluder, i.e.
# off by the relative motion of the two surfaces, which is several pixels for any occlusion that
# shows. 1 px sits between the two; raise it for noisy flows at high resolution.
DEFAULT_CYCLE_TOLERANCE = 1.0

# Canny on the 8-bit depth (see `depth_to_u8`): gradients are Sobel (3x3) with the L2 norm, so a
# one-pixel step of h grey levels gives a magnitude of 4h. high = 100 seeds edges at steps of
# >= 25 levels (~10% of the frame's depth range); low = 50 continues them down to ~5%. A smooth
# ramp across the frame (2-3 levels per pixel) stays far below both.
CANNY_LOW = 50
CANNY_HIGH = 100
# Pixels whose Manhattan (L1) distance to an edge pixel is < EDGE_EXCLUSION_DISTANCE are excluded:
# the edge pixel and two pixels on either side of it across a straight edge, a 5-pixel band.
EDGE_EXCLUSION_DISTANCE = 3
# Per-frame normalisation ignores the extreme 0.5% at each end, so a few outliers (sky at 1e-6,
# a hot pixel) do not squash the rest of the frame into a handful of grey levels.
NORMALISATION_PERCENTILES = (0.5, 99.5)


def cycle_consistency_mask(
    flow_ab: torch.Tensor, flow_ba: torch.Tensor, *, tau: float = DEFAULT_CYCLE_TOLERANCE
) -> torch.Tensor:
    """Pixels of frame a whose round trip a -> b -> a returns within `tau` pixels, (B, 1, H, W) bool.

    `flow_ab` (B, 2, H, W) is on frame a's grid, `flow_ba` on frame b's. A pixel x is valid when
    x + flow_ab(x) lies inside frame b and |flow_ab(x) + flow_ba(x + flow_ab(x))| <= tau, i.e. the
    composed map O_{b->a}(O_{a->b}(x)) lands within tau of x.
    """
    if tau < 0:
        raise ValueError(f"cycle tolerance tau must be >= 0, got {tau}")
    back, inside = backward_warp(flow_ba, flow_ab)  # flow_ba sampled where x lands in b
    error = torch.linalg.vector_norm(flow_ab + back, dim=1, keepdim=True)  # (B, 1, H, W)
    return inside & (error <= tau)


def depth_to_u8(depth: np.ndarray) -> np.ndarray:
    """Map one depth frame (H, W) to 8 bits for Canny: the 0.5th-99.5th percentile range of the
    frame's finite values spans 0-255 (clipped outside it); a flat frame maps to all zeros."""
    finite = depth[np.isfinite(depth)]
    if finite.size == 0:
        return np.zeros(depth.shape, np.uint8)
    low, high = np.percentile(finite, NORMALISATION_PERCENTILES)
    if high <= low:
        return np.zeros(depth.shape, np.uint8)
    scaled = (np.nan_to_num(depth, nan=low) - low) / (high - low)
    return np.clip(np.rint(scaled * 255.0), 0, 255).astype(np.uint8)


def depth_edge_mask(
    depth: torch.Tensor,
    *,
    low: int = CANNY_LOW,
    high: int = CANNY_HIGH,
    distance: int = EDGE_EXCLUSION_DISTANCE,
) -> torch.Tensor:
    """True where a pixel is FAR from depth edges, (B, 1, H, W) bool, for depth (B, 1, H, W).

    Each frame is normalised to 8 bits (`depth_to_u8`), edges come from Canny (`low`, `high`,
    Sobel 3x3, L2 gradient), and pixels at Manhattan distance < `distance` from an edge are False.
    """
    import cv2

    if depth.ndim != 4 or depth.shape[1] != 1:
        raise ValueError(f"depth must be (B, 1, H, W), got {tuple(depth.shape)}")
    if distance < 1:
        raise ValueError(f"edge exclusion distance must be >= 1, got {distance}")
    frames = depth.detach().float().cpu().numpy()[:, 0]
    keep = []
    for frame in frames:
        edges = cv2.Canny(depth_to_u8(frame), low, high, apertureSize=3, L2gradient=True)
        # distanceTransform measures to the nearest zero pixel: make edges the zeros.
        to_edge = cv2.distanceTransform(np.where(edges > 0, 0, 255).astype(np.uint8), cv2.DIST_L1, 3)
        keep.append(to_edge >= distance)
    return torch.from_numpy(np.stack(keep)[:, None]).to(depth.device)


def pair_validity(
    flows_fw: torch.Tensor,
    flows_bw: torch.Tensor,
    *,
    depth: torch.Tensor | None = None,
    tau: float = DEFAULT_CYCLE_TOLERANCE,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Validity of the correspondences between consecutive frames, as used by L_stable.

    `flows_fw` (N, 2, H, W) k -> k+1 on frame k's grid, `flows_bw` (N, 2, H, W) k+1 -> k on
    frame k+1's grid, `depth` (N+1, 1, H, W) the predicted depth of the N+1 frames (None: no edge
    exclusion). Returns `(valid_fw, valid_bw)`, each (N, 1, H, W) bool, on frames k and k+1's grids.
    """
    if flows_fw.shape != flows_bw.shape or flows_fw.ndim != 4 or flows_fw.shape[1] != 2:
        raise ValueError(
            f"flows must both be (N, 2, H, W), got {tuple(flows_fw.shape)}, {tuple(flows_bw.shape)}"
        )
    valid_fw = cycle_consistency_mask(flows_fw, flows_bw, tau=tau)
    valid_bw = cycle_consistency_mask(flows_bw, flows_fw, tau=tau)
    if depth is not None:
        if depth.shape[0] != flows_fw.shape[0] + 1 or depth.shape[-2:] != flows_fw.shape[-2:]:
            raise ValueError(
                f"depth {tuple(depth.shape)} must be (N+1, 1, H, W) for flows {tuple(flows_fw.shape)}"
            )
        far_from_edges = depth_edge_mask(depth)  # (N+1, 1, H, W)
        valid_fw = valid_fw & far_from_edges[:-1]
        valid_bw = valid_bw & far_from_edges[1:]
    return valid_fw, valid_bw
