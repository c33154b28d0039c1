"""How frames reach the normal model and how its output goes back to the plate: bufferany's own rules
(the default) and the official Marigold-E2E-FT inference's (`--schedule official`).

The two differ in three places, each a field of `Preprocessing` so that each can be measured on its
own (`benchmarks/bench_normal_preprocessing.py`; docs/models.md gives the figures):
- `quantize`: the official code reads 8-bit images and resizes them as uint8 (antialiased bilinear,
  rounded back to uint8); bufferany resizes the float frames and never rounds;
- `fit`: the official code gives the VAE any size (its strided convolutions floor 90 rows to 88) and
  stretches the result back to the processing size; bufferany pads to a multiple of 8 by edge
  replication and crops, so every output pixel stays registered to its input pixel;
- `renormalize`: bufferany re-normalises after upsampling to the plate (unit normals everywhere);
  the official code divides by (|n| + 1e-5) before the resize and clips to [-1, 1] after it.
Sizes follow the same split: the official processing size truncates (`int()`), ours rounds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

LATENT_FACTOR = 8  # the VAE's downsampling


@dataclass(frozen=True)
class Preprocessing:
    quantize: bool  # frames quantised to uint8 and resized in uint8 (rounded), as the official code
    fit: Literal["pad", "stretch"]  # pad to 8 and crop (ours) | VAE floors, result stretched back (official)
    renormalize: bool  # unit normals after the final resize (ours) | /(|n|+1e-5), clip (official)
    sizes: Literal["round", "int"] = "round"  # processing size: rounded (ours) | truncated (official)


PREPROCESSINGS: dict[str, Preprocessing] = {
    "bufferany": Preprocessing(quantize=False, fit="pad", renormalize=True, sizes="round"),
    "official": Preprocessing(quantize=True, fit="stretch", renormalize=False, sizes="int"),
}


def get_preprocessing(choice: str | Preprocessing) -> Preprocessing:
    if isinstance(choice, Preprocessing):
        return choice
    try:
        return PREPROCESSINGS[choice]
    except KeyError:
        raise ValueError(
            f"unknown normal preprocessing {choice!r}; known: {', '.join(PREPROCESSINGS)}"
        ) from None


def processing_shape(
    height: int, width: int, processing_size: int, *, sizes: str = "round"
) -> tuple[int, int]:
    """(h, w) with the longest edge `processing_size` and the aspect kept; 0 keeps the input size.
    `sizes="int"` truncates as the official `resize_max_res` (factor min(p / w, p / h))."""
    if processing_size == 0:
        return height, width
    if sizes == "int":
        factor = min(processing_size / width, processing_size / height)
        return max(1, int(height * factor)), max(1, int(width * factor))
    scale = processing_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


def quantized_resize(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(T,3,H,W) sRGB in [0,1] -> (T,3,h,w) uint8 as the official code gets them: the frames as 8-bit
    values, resized antialiased bilinear in float and rounded back to uint8 (torchvision's rule for
    uint8 tensors; torch's native uint8 kernel rounds differently by 1 in places)."""
    x = (frames.clamp(0.0, 1.0) * 255.0).round()
    if tuple(x.shape[-2:]) != size:
        x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = x.round().clamp(0.0, 255.0)
    return x.to(torch.uint8)


def official_normalize(normals: torch.Tensor) -> torch.Tensor:
    """The official pipeline's normalisation: divided by (|n| + 1e-5)."""
    return normals / (torch.linalg.vector_norm(normals, dim=1, keepdim=True) + 1e-5)
