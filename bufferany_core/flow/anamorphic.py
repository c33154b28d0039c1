"""Anamorphic plates and optical flow: the square-pixel view of a plate (a pixel `pixel_aspect` times as
wide as tall becomes square by stretching the short pixel dimension) and frame pairs computed on it,
brought back to the plate's grid. Flow is a displacement: it maps back with the Jacobian of
plate <- view, J = diag(width / view width, height / view height)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bufferany_core.flow.backends import FlowEstimator
from bufferany_core.flow.masks import DEFAULT_CYCLE_TOLERANCE
from bufferany_core.flow.pairs import FramePairs, compute_frame_pairs

ASPECT_TOLERANCE = 1e-6  # pixel aspects closer than this to 1 are square


def is_square(pixel_aspect: float) -> bool:
    return abs(pixel_aspect - 1.0) <= ASPECT_TOLERANCE


def square_shape(height: int, width: int, pixel_aspect: float) -> tuple[int, int]:
    """(height, width) of the plate shown with square pixels: the short pixel dimension is stretched
    (aspect 2.0: twice the width; 0.5: twice the height), so no plate detail is lost."""
    if pixel_aspect <= 0:
        raise ValueError(f"pixel aspect must be positive, got {pixel_aspect}")
    if is_square(pixel_aspect):
        return height, width
    if pixel_aspect > 1:
        return height, max(1, round(width * pixel_aspect))
    return max(1, round(height / pixel_aspect)), width


def to_square(frames: torch.Tensor, pixel_aspect: float, *, clamp: bool = False) -> torch.Tensor:
    """(T, C, H, W) plate-grid images -> the square-pixel view (bicubic; `clamp` keeps [0, 1] pictures
    in range). Square plates come back as they are (the same tensor)."""
    shape = square_shape(frames.shape[-2], frames.shape[-1], pixel_aspect)
    if shape == tuple(frames.shape[-2:]):
        return frames
    out = F.interpolate(frames, size=shape, mode="bicubic", align_corners=False)
    return out.clamp(0.0, 1.0) if clamp else out


def plate_pairs(pairs: FramePairs, height: int, width: int) -> FramePairs:
    """Frame pairs computed on the square view, on the plate's grid: flows resampled and rescaled as
    displacements (x by width / view width, y by height / view height: J dx'), validity sampled at the
    nearest view pixel."""
    h, w = pairs.flows_fw.shape[-2:]
    if (h, w) == (height, width):
        return pairs
    scale = torch.tensor([width / w, height / h], dtype=pairs.flows_fw.dtype, device=pairs.flows_fw.device)

    def flow(f: torch.Tensor) -> torch.Tensor:
        resampled = F.interpolate(
            f, size=(height, width), mode="bilinear", align_corners=False, antialias=True
        )
        return resampled * scale.view(1, 2, 1, 1)

    def valid(m: torch.Tensor) -> torch.Tensor:
        return F.interpolate(m.float(), size=(height, width), mode="nearest-exact") > 0.5

    return FramePairs(
        flow(pairs.flows_fw), flow(pairs.flows_bw), valid(pairs.valid_fw), valid(pairs.valid_bw)
    )


def square_frame_pairs(
    frames: torch.Tensor,
    estimator: FlowEstimator,
    *,
    pixel_aspect: float,
    depth: torch.Tensor | None = None,
    tau: float = DEFAULT_CYCLE_TOLERANCE,
) -> FramePairs:
    """`flow.pairs.compute_frame_pairs` on the square-pixel view of plate-grid frames (T, 3, H, W) (and
    depth), returned on the plate's grid: the flow estimator, the cycle check's `tau` and the depth-edge
    band all work in square pixels, as they were designed to."""
    if is_square(pixel_aspect):
        return compute_frame_pairs(frames, estimator, depth=depth, tau=tau)
    height, width = frames.shape[-2:]
    square = to_square(frames, pixel_aspect, clamp=True)
    square_depth = None if depth is None else to_square(depth, pixel_aspect)
    return plate_pairs(compute_frame_pairs(square, estimator, depth=square_depth, tau=tau), height, width)
