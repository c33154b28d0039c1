"""Video Depth Anything (Small, Apache-2.0): Depth Anything V2 with four temporal blocks in its head,
trained by its authors. Loads `video_depth_anything_vits.pth` with `strict=True`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from bufferany_core.models.depth.backbone import PATCH_SIZE, DinoV2Backbone
from bufferany_core.models.depth.depth_anything import get_size
from bufferany_core.models.depth.dpt import DPTHead
from bufferany_core.models.depth.preprocess import ImageNetInput
from bufferany_core.models.temporal import TemporalBlock, TemporalBlockConfig

# Where the official model attends over time: on the two coarsest reassembled maps, then after two fusions.
_VDA_POINTS = ("layer3", "layer4", "fusion4", "fusion3")
VDA_TEMPORAL = TemporalBlockConfig(
    num_heads=8, num_layers=1, attention_per_layer=2, max_frames=32, norm_groups=32
)


class MotionModule(nn.Module):
    """Holds a temporal block under the official checkpoint name `temporal_transformer`."""

    def __init__(self, block: TemporalBlock):
        super().__init__()
        self.temporal_transformer = block


class DPTHeadTemporal(DPTHead):
    def __init__(
        self,
        *,
        in_channels: int,
        features: int,
        out_channels: Sequence[int],
        temporal: TemporalBlockConfig,
    ):
        super().__init__(in_channels=in_channels, features=features, out_channels=out_channels)
        widths = (out_channels[2], out_channels[3], features, features)
        self.motion_modules = nn.ModuleList(
            MotionModule(TemporalBlock.from_config(temporal, channels=c)) for c in widths
        )

    def forward(self, tokens, patch_h: int, patch_w: int, *, num_frames: int) -> torch.Tensor:  # type: ignore[override]
        modules = dict(zip(_VDA_POINTS, self.motion_modules, strict=True))

        def hook(point: str, x: torch.Tensor) -> torch.Tensor:
            module = modules.get(point)
            return x if module is None else module.temporal_transformer(x, num_frames)

        return super().forward(tokens, patch_h, patch_w, temporal_hook=hook)


class VideoDepthAnything(ImageNetInput, nn.Module):
    """forward(x (B, T, 3, H, W) ImageNet-normalised (`normalize`), H, W multiples of 14) -> (B, T, H, W)."""

    def __init__(
        self,
        *,
        embed_dim: int,
        depth: int,
        num_heads: int,
        tap_layers: tuple[int, int, int, int],
        features: int,
        out_channels: tuple[int, int, int, int],
        temporal: TemporalBlockConfig,
    ):
        super().__init__()
        self.max_frames = temporal.max_frames
        self.pretrained = DinoV2Backbone(
            embed_dim=embed_dim, depth=depth, num_heads=num_heads, tap_layers=tap_layers
        )
        self.head = DPTHeadTemporal(
            in_channels=embed_dim, features=features, out_channels=out_channels, temporal=temporal
        )

    @classmethod
    def from_size(cls, size: str) -> VideoDepthAnything:
        s = get_size(size)
        return cls(**s.model_kwargs(), temporal=replace(VDA_TEMPORAL, norm_groups=s.temporal_norm_groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 5:
            raise ValueError(f"expected frames (B, T, 3, H, W), got {tuple(x.shape)}")
        b, t, _, h, w = x.shape
        tokens = [tok for tok, _cls in self.pretrained(x.flatten(0, 1))]
        depth = self.head(tokens, h // PATCH_SIZE, w // PATCH_SIZE, num_frames=t)  # (B*T, 1, H, W)
        return depth.view(b, t, h, w)
