"""Depth Anything V2: DINOv2 ViT encoder + DPT head, one image at a time (the image prior)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from bufferany_core.models.depth.backbone import PATCH_SIZE, DinoV2Backbone
from bufferany_core.models.depth.dpt import DPTHead
from bufferany_core.models.depth.preprocess import ImageNetInput


@dataclass(frozen=True)
class DepthAnythingSize:
    embed_dim: int
    depth: int
    num_heads: int
    tap_layers: tuple[int, int, int, int]
    features: int  # DPT fusion width
    out_channels: tuple[int, int, int, int]  # DPT reassembly widths, fine to coarse
    temporal_norm_groups: int  # GroupNorm groups of temporal blocks on this head's features

    def model_kwargs(self) -> dict:
        """The constructor arguments of the models built on this size."""
        return {
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "tap_layers": self.tap_layers,
            "features": self.features,
            "out_channels": self.out_channels,
        }


SIZES: dict[str, DepthAnythingSize] = {
    "vits": DepthAnythingSize(384, 12, 6, (2, 5, 8, 11), 64, (48, 96, 192, 384), 32),
    "vitb": DepthAnythingSize(768, 12, 12, (2, 5, 8, 11), 128, (96, 192, 384, 768), 32),
    "vitl": DepthAnythingSize(1024, 24, 16, (4, 11, 17, 23), 256, (256, 512, 1024, 1024), 32),
    # Tests and demos only (random weights): the whole pipeline runs on a CPU in seconds.
    "tiny": DepthAnythingSize(48, 4, 2, (0, 1, 2, 3), 32, (16, 32, 64, 64), 8),
}


def get_size(size: str) -> DepthAnythingSize:
    try:
        return SIZES[size]
    except KeyError:
        raise ValueError(f"unknown Depth Anything size {size!r}; known: {', '.join(SIZES)}") from None


class DepthAnythingV2(ImageNetInput, nn.Module):
    """forward(x (B, 3, H, W) ImageNet-normalised (`normalize`), H, W multiples of 14) -> (B, H, W)
    relative inverse depth."""

    def __init__(
        self,
        *,
        embed_dim: int,
        depth: int,
        num_heads: int,
        tap_layers: tuple[int, int, int, int],
        features: int,
        out_channels: tuple[int, int, int, int],
    ):
        super().__init__()
        self.pretrained = DinoV2Backbone(
            embed_dim=embed_dim, depth=depth, num_heads=num_heads, tap_layers=tap_layers
        )
        self.depth_head = DPTHead(in_channels=embed_dim, features=features, out_channels=out_channels)

    @classmethod
    def from_size(cls, size: str) -> DepthAnythingV2:
        return cls(**get_size(size).model_kwargs())

    def encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Patch tokens of the 4 tapped blocks, each (B, H/14 * W/14, C)."""
        return [tokens for tokens, _cls in self.pretrained(x)]

    def decode(self, tokens: list[torch.Tensor], height: int, width: int) -> torch.Tensor:
        """Head on encoded tokens -> (B, H, W)."""
        return self.depth_head(tokens, height // PATCH_SIZE, width // PATCH_SIZE).squeeze(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.encode(x), x.shape[-2], x.shape[-1])
