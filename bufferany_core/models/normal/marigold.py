"""Marigold-E2E-FT normals: a Stable Diffusion 2 UNet that maps an image latent to a normal latent
in one deterministic step, and the VAE that encodes images and decodes normals.

One step at the last training timestep (999) from an all-zero noisy latent: E2E-FT was fine-tuned
end to end exactly that way, converting the UNet output to a clean-latent estimate with the
scheduler's own formula (for v-prediction x0 = sqrt(a) * x_t - sqrt(1 - a) * v with x_t = 0), so
the estimate is a fixed multiple of the UNet output (`latent_coefficient`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from torch import nn


def clean_latent_coefficient(*, alpha_cumprod: float, prediction_type: str) -> float:
    """Factor from the UNet output to the clean latent when the noisy latent is zero."""
    if prediction_type == "v_prediction":
        return -((1.0 - alpha_cumprod) ** 0.5)
    if prediction_type == "epsilon":
        return -(((1.0 - alpha_cumprod) / alpha_cumprod) ** 0.5)
    if prediction_type == "sample":
        return 1.0
    raise ValueError(f"unknown scheduler prediction_type {prediction_type!r}")


class MarigoldNormals(nn.Module):
    """Image prior: `forward(images (B,3,H,W) in [-1,1], H and W multiples of 8) -> (B,3,H,W)` unit
    normals in the model's own axis convention (configs.MODEL_AXES); `normalize` maps sRGB to its input."""

    def __init__(
        self,
        *,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        text_embedding: torch.Tensor,
        latent_coefficient: float,
        timestep: int = 999,
    ):
        super().__init__()
        if unet.config.in_channels != 2 * vae.config.latent_channels:
            raise ValueError(
                f"UNet takes {unet.config.in_channels} channels; Marigold needs twice the VAE's "
                f"{vae.config.latent_channels} latent channels (image latent + normal latent)"
            )
        if text_embedding.ndim != 3 or text_embedding.shape[0] != 1:
            raise ValueError(f"text embedding must be (1, tokens, dim), got {tuple(text_embedding.shape)}")
        if text_embedding.shape[-1] != unet.config.cross_attention_dim:
            raise ValueError(
                f"text embedding width {text_embedding.shape[-1]} != UNet cross_attention_dim "
                f"{unet.config.cross_attention_dim}"
            )
        self.unet = unet
        self.vae = vae
        self.register_buffer("text_embedding", text_embedding, persistent=False)
        self.latent_coefficient = float(latent_coefficient)
        self.timestep = int(timestep)
        self.latent_scale = float(vae.config.scaling_factor)

    @staticmethod
    def normalize(rgb: torch.Tensor) -> torch.Tensor:
        """sRGB in [0, 1] -> the [-1, 1] images the VAE encodes (as Stable Diffusion was trained)."""
        return rgb * 2.0 - 1.0

    def encode(self, images: torch.Tensor, *, any_size: bool = False) -> torch.Tensor:
        """(B,3,H,W) in [-1,1] -> scaled latents (B,4,H/8,W/8): the posterior mean, as E2E-FT does.
        `any_size`: sides that are not multiples of 8 are accepted and the VAE's strided convolutions
        floor them (90 rows -> 11 latent rows), as the official inference lets happen."""
        _check_images(images, any_size=any_size)
        return self.vae.encode(images).latent_dist.mode() * self.latent_scale

    def predict_latent(self, rgb_latents: torch.Tensor) -> torch.Tensor:
        """Image latents (B,4,h,w) -> clean normal latents (B,4,h,w), every frame on its own."""
        return self.latent_coefficient * self.unet_output(rgb_latents, self.text_embedding)

    def unet_output(self, rgb_latents: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
        """Raw UNet output for image latents and a zero noisy latent (shared with the video model)."""
        if rgb_latents.ndim != 4 or rgb_latents.shape[1] != self.vae.config.latent_channels:
            raise ValueError(
                f"expected latents (B,{self.vae.config.latent_channels},h,w), got {tuple(rgb_latents.shape)}"
            )
        sample = torch.cat([rgb_latents, torch.zeros_like(rgb_latents)], dim=1)  # (B, 8, h, w), this order
        context = text_embedding.to(rgb_latents.dtype).expand(rgb_latents.shape[0], -1, -1)
        timestep = torch.tensor(self.timestep, device=rgb_latents.device)
        return self.unet(sample, timestep, encoder_hidden_states=context).sample

    def decode(self, latents: torch.Tensor, *, chunk: int | None = None) -> torch.Tensor:
        """Clean latents (N,4,h,w) -> unit normals (N,3,8h,8w), decoding `chunk` frames at a time
        (bounded memory; results equal a single decode)."""
        return F.normalize(self.decode_raw(latents, chunk=chunk), dim=1, eps=1e-6)

    def decode_raw(self, latents: torch.Tensor, *, chunk: int | None = None) -> torch.Tensor:
        """Clean latents (N,4,h,w) -> the VAE's output (N,3,8h,8w) before any normalisation."""
        if chunk is not None and chunk < 1:
            raise ValueError(f"decode chunk must be >= 1, got {chunk}")
        pieces = latents.split(chunk or max(1, latents.shape[0]))
        return torch.cat([self.vae.decode(piece / self.latent_scale).sample for piece in pieces])

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.decode(self.predict_latent(self.encode(images)))


def _check_images(images: torch.Tensor, *, any_size: bool = False) -> None:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected images (B,3,H,W), got {tuple(images.shape)}")
    if any_size:
        if min(images.shape[-2:]) < 8:
            raise ValueError(f"image sides must be at least 8 pixels, got {tuple(images.shape[-2:])}")
    elif images.shape[-1] % 8 or images.shape[-2] % 8:
        raise ValueError(f"image height and width must be multiples of 8, got {tuple(images.shape[-2:])}")
