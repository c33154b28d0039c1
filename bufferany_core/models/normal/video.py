"""Buffer Anytime's normal video model: Marigold-E2E-FT with temporal blocks between the UNet's
spatial layers.

A temporal block (bufferany_core.models.temporal) follows every spatial layer pair of the UNet, as
in AnimateDiff: after each cross-attention transformer of an attention block, after each ResNet of a
plain block, and after the middle block. The blocks are attached with forward hooks that act only
inside `TemporalUNetAdapter.frames(n)`: the same frozen UNet (one copy in memory) then serves as the
image prior outside that context, which is what the L_reg loss compares against. Each block's output
projection starts at zero, so an untrained video model equals the image model frame by frame.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Mapping

import torch
from diffusers import UNet2DConditionModel
from torch import nn

from bufferany_core.models.normal.marigold import MarigoldNormals
from bufferany_core.models.temporal import TemporalBlock, TemporalBlockConfig


def insertion_points(unet: UNet2DConditionModel) -> list[tuple[str, int]]:
    """(module name, channels) of every spatial layer a temporal block follows, in forward order."""
    points = []
    for group in ("down_blocks", "up_blocks"):
        for i, block in enumerate(getattr(unet, group)):
            attentions = getattr(block, "attentions", None)
            if attentions and len(attentions) != len(block.resnets):
                raise ValueError(f"{group}.{i}: expected one attention layer per ResNet")
            kind = "attentions" if attentions else "resnets"
            points += [
                (f"{group}.{i}.{kind}.{j}", resnet.out_channels) for j, resnet in enumerate(block.resnets)
            ]
    points.append(("mid_block", unet.config.block_out_channels[-1]))
    return points


class TemporalUNetAdapter(nn.Module):
    """The trainable temporal blocks of the video model, keyed by the UNet layer they follow."""

    def __init__(self, unet: UNet2DConditionModel, *, config: TemporalBlockConfig):
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleDict()
        self._num_frames: int | None = None
        for name, channels in insertion_points(unet):
            key = name.replace(".", "_")
            self.blocks[key] = TemporalBlock.from_config(config, channels=channels)
            unet.get_submodule(name).register_forward_hook(self._hook(key))

    @contextlib.contextmanager
    def frames(self, num_frames: int) -> Iterator[None]:
        """Within this context the UNet's batch holds windows of `num_frames` consecutive frames."""
        if not 1 <= num_frames <= self.config.max_frames:
            raise ValueError(f"a window holds 1 to {self.config.max_frames} frames, got {num_frames}")
        self._num_frames = num_frames
        try:
            yield
        finally:
            self._num_frames = None

    def _hook(self, key: str):
        def apply(_module, _inputs, output):
            if self._num_frames is None:
                return None  # image prior: the UNet runs unchanged
            block = self.blocks[key]
            if isinstance(output, torch.Tensor):
                return block(output, self._num_frames)
            if isinstance(output, tuple):  # transformers called with return_dict=False
                return (block(output[0], self._num_frames), *output[1:])
            output.sample = block(output.sample, self._num_frames)
            return output

        return apply


class BufferAnytimeNormals(nn.Module):
    """Video model: `predict_latent(rgb_latents (B,T,4,h,w)) -> (B,T,4,h,w)` clean normal latents,
    with attention across the T frames of each window. Encoding and decoding are the image model's."""

    family = "normal"  # the pass its temporal weights belong to (models.temporal_weights)

    def __init__(self, *, image_model: MarigoldNormals, temporal_config: TemporalBlockConfig):
        super().__init__()
        self.image_model = image_model
        self.temporal = TemporalUNetAdapter(image_model.unet, config=temporal_config)
        image_model.requires_grad_(False)  # UNet and VAE stay frozen; only the temporal blocks train

    @property
    def max_frames(self) -> int:
        return self.temporal.config.max_frames

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.temporal.parameters())

    def temporal_config(self) -> dict:
        """The temporal blocks' hyperparameters and the UNet layers they follow, as JSON."""
        return {
            "temporal": dataclasses.asdict(self.temporal.config),
            "insertion_points": [list(p) for p in insertion_points(self.image_model.unet)],
        }

    def temporal_state_dict(self) -> dict[str, torch.Tensor]:
        """What training changes: the temporal blocks only (UNet and VAE stay the prior's)."""
        return self.temporal.state_dict()

    def load_temporal_state_dict(self, state: Mapping[str, torch.Tensor]) -> None:
        try:
            self.temporal.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # torch's wording for missing, unexpected or misshapen keys
            raise ValueError(str(exc)) from None

    def normalize(self, rgb: torch.Tensor) -> torch.Tensor:
        return self.image_model.normalize(rgb)

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        return self.image_model.encode(images)

    def decode(self, latents: torch.Tensor, *, chunk: int | None = None) -> torch.Tensor:
        return self.image_model.decode(latents, chunk=chunk)

    def image_latents(self, rgb_latents: torch.Tensor) -> torch.Tensor:
        """The image prior's clean latents for (N,4,h,w) image latents (no temporal blocks)."""
        return self.image_model.predict_latent(rgb_latents)

    def predict_latent(self, rgb_latents: torch.Tensor) -> torch.Tensor:
        if rgb_latents.ndim != 5:
            raise ValueError(f"expected latents (B,T,C,h,w), got {tuple(rgb_latents.shape)}")
        b, t = rgb_latents.shape[:2]
        with self.temporal.frames(t):
            out = self.image_model.predict_latent(rgb_latents.flatten(0, 1))  # (B*T, 4, h, w)
        return out.unflatten(0, (b, t))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B,T,3,H,W) in [-1,1] -> (B,T,3,H,W) unit normals in the model's axis convention."""
        if images.ndim != 5:
            raise ValueError(f"expected images (B,T,3,H,W), got {tuple(images.shape)}")
        b, t = images.shape[:2]
        latents = self.predict_latent(self.encode(images.flatten(0, 1)).unflatten(0, (b, t)))
        return self.decode(latents.flatten(0, 1)).unflatten(0, (b, t))
