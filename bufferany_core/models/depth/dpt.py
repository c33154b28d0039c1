"""DPT head of Depth Anything V2: reassembles ViT tokens into a feature pyramid, fuses it coarse to
fine and predicts one non-negative channel (relative inverse depth). Key names follow the official
checkpoints (`projects`, `resize_layers`, `scratch.*`), including `refinenet4.resConfUnit1`, which
the checkpoints carry although the coarsest fusion block has no skip input to use it on.

Video models insert temporal blocks at named points of the head through `temporal_hook`:
"layer3", "layer4" (reassembled features, before their 3x3 convs) and "fusion4", "fusion3",
"fusion2" (outputs of the fusion blocks, coarse to fine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F
from torch import nn

from bufferany_core.models.depth.backbone import PATCH_SIZE

TemporalHook = Callable[[str, torch.Tensor], torch.Tensor]
HOOK_POINTS = ("layer3", "layer4", "fusion4", "fusion3", "fusion2")
_HEAD_HIDDEN = 32  # channels of the last hidden conv, the same for every model size


class ResidualConvUnit(nn.Module):
    def __init__(self, *, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, padding=1)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.relu(x)))) + x


class FeatureFusionBlock(nn.Module):
    """Adds a refined skip input (if any), refines, upsamples (to `size`, or 2x) and projects."""

    def __init__(self, *, features: int):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(features=features)
        self.resConfUnit2 = ResidualConvUnit(features=features)

    def forward(
        self, x: torch.Tensor, skip: torch.Tensor | None = None, *, size: Sequence[int] | None = None
    ) -> torch.Tensor:
        if skip is not None:
            x = x + self.resConfUnit1(skip)
        x = self.resConfUnit2(x)
        if size is None:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=True)
        else:
            x = F.interpolate(x, size=tuple(size), mode="bilinear", align_corners=True)
        return self.out_conv(x)


class DPTScratch(nn.Module):
    """The convolutions the official checkpoints nest under `scratch.`: per-level 3x3 projections to
    the fusion width, the four fusion blocks and the output convolutions."""

    def __init__(self, *, features: int, out_channels: Sequence[int]):
        super().__init__()
        self.layer1_rn, self.layer2_rn, self.layer3_rn, self.layer4_rn = (
            nn.Conv2d(c, features, kernel_size=3, padding=1, bias=False) for c in out_channels
        )
        self.refinenet1, self.refinenet2, self.refinenet3, self.refinenet4 = (
            FeatureFusionBlock(features=features) for _ in range(4)
        )
        self.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, padding=1)
        self.output_conv2 = nn.Sequential(
            nn.Conv2d(features // 2, _HEAD_HIDDEN, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(_HEAD_HIDDEN, 1, kernel_size=1),
            nn.ReLU(),
        )


class DPTHead(nn.Module):
    def __init__(self, *, in_channels: int, features: int, out_channels: Sequence[int]):
        super().__init__()
        if len(out_channels) != 4:
            raise ValueError(f"out_channels must have 4 entries, got {out_channels}")
        self.features = features
        self.projects = nn.ModuleList(nn.Conv2d(in_channels, c, kernel_size=1) for c in out_channels)
        self.resize_layers = nn.ModuleList(
            [
                nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4),
                nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2),
                nn.Identity(),
                nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
            ]
        )
        self.scratch = DPTScratch(features=features, out_channels=out_channels)

    def forward(
        self,
        tokens: Sequence[torch.Tensor],
        patch_h: int,
        patch_w: int,
        *,
        temporal_hook: TemporalHook | None = None,
    ) -> torch.Tensor:
        """tokens: 4 tensors (B, patch_h*patch_w, C) -> (B, 1, patch_h*14, patch_w*14), >= 0."""
        hook = temporal_hook or (lambda _point, x: x)
        layers = []
        for project, resize, x in zip(self.projects, self.resize_layers, tokens, strict=True):
            x = x.transpose(1, 2).reshape(x.shape[0], x.shape[-1], patch_h, patch_w)  # (B, C, h, w)
            layers.append(resize(project(x)))  # 4x, 2x, 1x, 1/2x the patch grid
        layers[2] = hook("layer3", layers[2])
        layers[3] = hook("layer4", layers[3])
        s = self.scratch
        rn1, rn2, rn3, rn4 = (
            s.layer1_rn(layers[0]),
            s.layer2_rn(layers[1]),
            s.layer3_rn(layers[2]),
            s.layer4_rn(layers[3]),
        )
        path = hook("fusion4", s.refinenet4(rn4, size=rn3.shape[2:]))
        path = hook("fusion3", s.refinenet3(path, rn3, size=rn2.shape[2:]))
        path = hook("fusion2", s.refinenet2(path, rn2, size=rn1.shape[2:]))
        path = s.refinenet1(path, rn1)
        out = s.output_conv1(path)
        out = F.interpolate(
            out, (patch_h * PATCH_SIZE, patch_w * PATCH_SIZE), mode="bilinear", align_corners=True
        )
        # The last convs run in float32 under autocast: small disparities lose precision in half floats.
        device_type = out.device.type
        fp32 = (
            torch.autocast(device_type, enabled=False)
            if torch.amp.is_autocast_available(device_type)
            else nullcontext()
        )
        with fp32:
            return s.output_conv2(out.float())
