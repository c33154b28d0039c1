"""DINOv2 ViT encoder of Depth Anything V2, on timm's VisionTransformer, with the official key names.

Two things differ from timm's own DINOv2 and matter for loading and parity with the official models:
the checkpoints carry a `mask_token` (unused at inference), and the position embedding is resized
to other token grids with the official formula (bicubic with `scale_factor=(n + 0.1) / 37`, no
antialias), not timm's (exact output size, antialias).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.models.vision_transformer import VisionTransformer
from torch import nn

PATCH_SIZE = 14
PRETRAIN_GRID = 37  # pos_embed holds 37x37 patch positions (trained at 518x518)
_POS_EMBED_OFFSET = 0.1  # the official resize adds 0.1 to the target grid to avoid rounding down


class DinoV2Backbone(VisionTransformer):
    """Returns, for each tapped block, the patch tokens and class token after the final LayerNorm."""

    def __init__(
        self,
        *,
        embed_dim: int,
        depth: int,
        num_heads: int,
        tap_layers: Sequence[int],
        mlp_ratio: float = 4.0,
        layer_scale_init: float = 1e-5,
    ):
        if len(tap_layers) != 4 or not all(0 <= i < depth for i in tap_layers):
            raise ValueError(f"tap_layers must be 4 block indices below depth {depth}, got {tap_layers}")
        super().__init__(
            img_size=PATCH_SIZE * PRETRAIN_GRID,
            patch_size=PATCH_SIZE,
            embed_dim=embed_dim,
            depth=depth,
            num_heads=num_heads,
            mlp_ratio=mlp_ratio,
            init_values=layer_scale_init,
            num_classes=0,
            global_pool="",
            dynamic_img_size=True,  # any input size; tokens come back as (B, h, w, C)
            weight_init="skip",  # weights always come from a checkpoint or the deterministic rule
        )
        self.mask_token = nn.Parameter(torch.zeros(1, embed_dim))
        self.tap_layers = tuple(tap_layers)

    def resized_pos_embed(self, grid_h: int, grid_w: int) -> torch.Tensor:
        """Position embedding for a grid_h x grid_w token grid, (1, 1 + grid_h*grid_w, C), as the official code."""
        if grid_h == grid_w == PRETRAIN_GRID:
            return self.pos_embed
        pos_embed = self.pos_embed.float()
        side = int(math.sqrt(pos_embed.shape[1] - 1))
        patch_pos = pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)  # (1, C, 37, 37)
        patch_pos = F.interpolate(
            patch_pos,
            scale_factor=((grid_h + _POS_EMBED_OFFSET) / side, (grid_w + _POS_EMBED_OFFSET) / side),
            mode="bicubic",
            antialias=False,
        )
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([pos_embed[:, :1], patch_pos], dim=1)

    def forward(self, x: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """x: (B, 3, H, W), ImageNet-normalised, H and W multiples of 14.

        Returns 4 pairs (patch tokens (B, H/14 * W/14, C), class token (B, C))."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(x.shape)}")
        if x.shape[-2] % PATCH_SIZE or x.shape[-1] % PATCH_SIZE:
            raise ValueError(f"image size {tuple(x.shape[-2:])} is not a multiple of {PATCH_SIZE}")
        tokens = self.patch_embed(x)  # (B, h, w, C)
        b, grid_h, grid_w, _ = tokens.shape
        tokens = torch.cat([self.cls_token.expand(b, -1, -1), tokens.flatten(1, 2)], dim=1)
        tokens = tokens + self.resized_pos_embed(grid_h, grid_w).to(tokens.dtype)
        taps = []
        for index, block in enumerate(self.blocks):
            tokens = block(tokens)
            if index in self.tap_layers:
                normed = self.norm(tokens)
                taps.append((normed[:, 1:], normed[:, 0]))
        return taps
