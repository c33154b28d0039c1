"""The stabiliser's bounded working resolution: plates larger than it are stabilised on shrunk copies
of the plate and passes, and only the correction (stabilised minus input) is brought back up.

Why it loses nothing that matters: a render's passes are predicted at the model's processing size
(518 px on the short side by default) and resized to the plate, so they hold no temporal error finer
than that size; the stabiliser's cost, linear in pixels, stays bounded whatever the plate."""

from __future__ import annotations

import cv2
import numpy as np


def working_shape(height: int, width: int, size: int) -> tuple[int, int] | None:
    """(height, width) with the short side scaled to `size`, the aspect ratio kept (rounded); None when
    the short side is already at most `size` (the plate is stabilised as it is)."""
    if size < 1:
        raise ValueError(f"the stabiliser's working size must be a positive number of pixels, got {size}")
    short = min(height, width)
    if short <= size:
        return None
    scale = size / short
    return max(1, round(height * scale)), max(1, round(width * scale))


def shrink(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(H, W) or (H, W, C<=4) float32 averaged down to `shape` (an area average: no aliasing, so fine
    texture of the plate cannot turn into moire the flow would follow)."""
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA).reshape(*shape, *image.shape[2:])


# Rounds of back-projection of an enlarged correction (each adds the enlarged part of the correction
# its shrunk copy still misses): shrinking a bilinear enlargement blurs it, so one bilinear enlargement
# of the correction undoes only part of flicker that is fine at the working size (a model's pixel
# noise at its processing size). Harder flicker made at 160 px and enlarged to 640x360, stabilised at
# 160: TE 0.138x / 0.118x / 0.107x of the input's with 0 / 1 / 3 rounds (0.099x at the plate's size),
# normals TE 0.135x / 0.103x / 0.085x (0.085x); each round is two resizes, a few ms at 1080p.
BACK_PROJECTIONS = 3


def _bilinear(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR).reshape(*shape, *image.shape[2:])


def enlarge(correction: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A working-size correction (h, w) or (h, w, C<=4) float32 brought up to `shape`: bilinear (the
    corrections of flicker are smooth where they are large: a drift, a pop, a region's offset), then
    BACK_PROJECTIONS rounds so that the result, shrunk again (`shrink`), is the working-size correction."""
    full = _bilinear(correction, shape)
    for _ in range(BACK_PROJECTIONS):
        full += _bilinear(correction - shrink(full, correction.shape[:2]), shape)
    return full
