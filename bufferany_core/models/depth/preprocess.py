"""Plate frames to model input and back, as the official Depth Anything V2 inference does."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from bufferany_core.models.depth.backbone import PATCH_SIZE

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def processing_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Keep the aspect ratio, scale the shorter side to about `size`, round both sides to multiples
    of 14 (never below `size`): the official "lower_bound" resize."""
    scale = max(size / height, size / width)

    def to_multiple(x: float) -> int:
        y = round(x / PATCH_SIZE) * PATCH_SIZE  # round half to even, as numpy does in the official code
        return y if y >= size else math.ceil(x / PATCH_SIZE) * PATCH_SIZE

    return to_multiple(scale * height), to_multiple(scale * width)


def area_shrink(frames: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor | None:
    """`--downscale area`: frames averaged straight down to `shape` (each output pixel the mean of the
    input pixels it covers: no aliasing, so fine texture cannot turn into moire); None when `shape` is
    not smaller in both directions (nothing to antialias, the model's own resize applies)."""
    if shape[0] > frames.shape[-2] or shape[1] > frames.shape[-1] or shape == tuple(frames.shape[-2:]):
        return None
    return F.interpolate(frames, size=shape, mode="area")


def resize_for_model(frames: torch.Tensor, size: int, downscale: str = "none") -> torch.Tensor:
    """(T, 3, H, W) sRGB in [0, 1] -> (T, 3, h, w) at the processing shape (bicubic, or an area average
    with `downscale="area"`); the model's `normalize` then turns it into the network's input."""
    h, w = processing_shape(frames.shape[-2], frames.shape[-1], size)
    shrunk = area_shrink(frames, (h, w)) if downscale == "area" else None
    if shrunk is not None:
        return shrunk
    return F.interpolate(frames, size=(h, w), mode="bicubic", align_corners=False)


# The official Video Depth Anything inference's own sizes (used by default, an explicit processing
# size overrides them): its demo first caps a frame's long side at 1280 pixels, and
# `infer_video_depth` lowers the input size of plates wider than 16:9 so the token count stays bounded.
MAX_LONG_SIDE = 1280
WIDE_RATIO = 1.78


def capped_shape(height: int, width: int, max_side: int = MAX_LONG_SIDE) -> tuple[int, int]:
    """(height, width) scaled so the long side is at most `max_side` (rounded), else unchanged."""
    if max(height, width) <= max_side:
        return height, width
    scale = max_side / max(height, width)
    return round(height * scale), round(width * scale)


def wide_input_size(height: int, width: int, size: int) -> int:
    """`size` lowered for plates wider (or taller) than 16:9, as the official inference does: a 2048x858
    scope plate at 518 runs at 392 (938x392) instead of 1232x518. Never below one patch."""
    ratio = max(height, width) / min(height, width)
    if ratio > WIDE_RATIO:
        size = round(int(size * 1.777 / ratio) / PATCH_SIZE) * PATCH_SIZE
    return max(size, PATCH_SIZE)


def official_sizes(height: int, width: int, size: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """(capped frame shape, processing shape) of a height x width plate under the official size rules."""
    capped = capped_shape(height, width)
    return capped, processing_shape(*capped, wide_input_size(*capped, size))


def resize_officially(frames: torch.Tensor, size: int, downscale: str = "none") -> torch.Tensor:
    """`resize_for_model` after the official size rules: frames whose long side exceeds 1280 are first
    shrunk to it (bicubic, antialiased, as the demo's video decoder scales), and wide plates get the
    lowered input size. `downscale="area"` averages the plate straight down to the same input shape."""
    (h, w), shape = official_sizes(frames.shape[-2], frames.shape[-1], size)
    shrunk = area_shrink(frames, shape) if downscale == "area" else None
    if shrunk is not None:
        return shrunk
    if (h, w) != tuple(frames.shape[-2:]):
        frames = F.interpolate(frames, size=(h, w), mode="bicubic", align_corners=False, antialias=True).clamp(0.0, 1.0)
    return resize_for_model(frames, wide_input_size(h, w, size))


class ImageNetInput:
    """Mixin of the depth models: they take sRGB normalised with ImageNet's mean and std, as the
    DINOv2 backbone was trained. `normalize` works on any (..., 3, H, W) tensor in [0, 1]."""

    @staticmethod
    def normalize(rgb: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(IMAGENET_MEAN, device=rgb.device, dtype=rgb.dtype).view(3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=rgb.device, dtype=rgb.dtype).view(3, 1, 1)
        return (rgb - mean) / std


def to_plate_resolution(depth: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(T, 1, h, w) -> (T, 1, height, width), bilinear with aligned corners as the official inference."""
    return F.interpolate(depth, size=(height, width), mode="bilinear", align_corners=True)
