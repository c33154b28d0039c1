"""Long shots in bounded memory: the whole-clip stabiliser over overlapping windows.

Each window is stabilised on its own; its depth is then put on the previous window's scale with a
robust scale and shift fitted over the frames they share, and the shared frames are cross-faded
linearly, so no seam shows. Memory: one window of frames, flows and filter state, plus the
overlap frames of the previous window's output.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from bufferany_core.flow.backends import FlowEstimator
from bufferany_core.stabilize.affine import robust_affine_fit
from bufferany_core.stabilize.stabilizer import StabilizeSettings, stabilize_clip

# plate (n, 3, H, W), depth (n, 1, H, W) or None, normals (n, 3, H, W) or None for frame indices
Loader = Callable[[range], tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]]
# Pixels per overlap frame used to fit one window's depth onto the previous one.
_ALIGN_PIXELS = 4096


@dataclass(frozen=True)
class StabilizedFrame:
    index: int  # position in the clip, 0-based
    depth: torch.Tensor | None  # (1, H, W)
    normals: torch.Tensor | None  # (3, H, W) unit


def window_ranges(frames: int, *, window: int, overlap: int) -> list[range]:
    """Frame ranges covering `frames` frames, `window` long, consecutive ones sharing `overlap`."""
    if window < 2:
        raise ValueError(f"window must be >= 2 frames, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window), got {overlap} for window {window}")
    if frames <= window:
        return [range(frames)]
    ranges, start = [], 0
    while start + window < frames:
        ranges.append(range(start, start + window))
        start += window - overlap
    ranges.append(range(max(frames - window, 0), frames))  # the last window ends on the last frame
    return ranges


def stabilize_in_windows(
    frames: int,
    load: Loader,
    estimator: FlowEstimator,
    *,
    window: int = 48,
    overlap: int = 8,
    settings: StabilizeSettings | None = None,
    pixel_aspect: float = 1.0,
) -> Iterator[StabilizedFrame]:
    """Yield every frame of a `frames`-long clip, stabilised, in order, as soon as it is final (the flow
    sees the plate with square pixels: `pixel_aspect` is the plate's)."""
    pending: dict[int, StabilizedFrame] = {}  # previous window's frames inside the next overlap
    ranges = window_ranges(frames, window=window, overlap=overlap)
    for number, span in enumerate(ranges):
        plate, depth, normals = load(span)
        stable_depth, stable_normals = stabilize_clip(
            plate, estimator, depth=depth, normals=normals, settings=settings, pixel_aspect=pixel_aspect
        )
        out_depth = stable_depth.depth if stable_depth is not None else None
        shared = [index for index in span if index in pending]
        if out_depth is not None and shared:
            source = torch.cat([_subsample(out_depth[index - span.start]) for index in shared]).double().cpu()
            target = torch.cat([_subsample(pending[index].depth) for index in shared]).double().cpu()  # type: ignore[arg-type]
            scale, shift = robust_affine_fit(source, target)
            out_depth = out_depth * scale + shift if scale > 0 else out_depth
        following = ranges[number + 1] if number + 1 < len(ranges) else range(0)
        for offset, index in enumerate(span):
            frame = StabilizedFrame(
                index,
                out_depth[offset] if out_depth is not None else None,
                stable_normals[offset] if stable_normals is not None else None,
            )
            if index in pending:
                frame = _cross_fade(pending.pop(index), frame, shared)
            if index in following:
                pending[index] = frame
            else:
                yield frame


def _subsample(image: torch.Tensor) -> torch.Tensor:
    flat = image.flatten()
    step = max(1, flat.numel() // _ALIGN_PIXELS)
    return flat[::step]


def _cross_fade(old: StabilizedFrame, new: StabilizedFrame, shared: list[int]) -> StabilizedFrame:
    # Weight of the new window rises linearly across the shared frames: 1/(n+1), ..., n/(n+1).
    weight = (shared.index(new.index) + 1) / (len(shared) + 1)
    depth = None
    if old.depth is not None and new.depth is not None:
        depth = (1 - weight) * old.depth + weight * new.depth
    normals = None
    if old.normals is not None and new.normals is not None:
        normals = torch.nn.functional.normalize(
            (1 - weight) * old.normals + weight * new.normals, dim=0, eps=1e-12
        )
    return StabilizedFrame(new.index, depth, normals)
