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


def resize_for_model(frames: torch.Tensor, size: int) -> torch.Tensor:
    """(T, 3, H, W) sRGB in [0, 1] -> (T, 3, h, w) at the processing shape (bicubic); the model's
    `normalize` then turns it into the network's input."""
    h, w = processing_shape(frames.shape[-2], frames.shape[-1], size)
    return F.interpolate(frames, size=(h, w), mode="bicubic", align_corners=False)


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
