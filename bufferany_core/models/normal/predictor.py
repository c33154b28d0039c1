"""`NormalPredictor`: a loaded normal model behind the pipeline's `PassPredictor` contract.

Frames are resized so their longest edge is the processing size (bilinear, antialiased, as
Marigold does), padded to a multiple of 8 by edge replication, run through the model, cropped,
upsampled back to the plate, re-normalised to unit length and converted to the project's axes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bufferany_core.conventions import NORMAL_AXES
from bufferany_core.models.api import ModelInfo
from bufferany_core.models.normal.configs import MODEL_AXES
from bufferany_core.models.normal.marigold import MarigoldNormals
from bufferany_core.models.normal.video import BufferAnytimeNormals
from bufferany_core.models.precision import Precision, autocast
from bufferany_core.normal_space import convert_axes

LATENT_FACTOR = 8  # the VAE's downsampling


def processing_shape(height: int, width: int, processing_size: int) -> tuple[int, int]:
    """(h, w) with the longest edge `processing_size` and the aspect kept; 0 keeps the input size."""
    if processing_size == 0:
        return height, width
    scale = processing_size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


class NormalPredictor:
    """`predict(frames (T,3,H,W) sRGB in [0,1]) -> (T,3,H,W)` unit camera-space normals in
    conventions.NORMAL_AXES. The video model sees the T frames as one window (T <= max_frames);
    the image model treats each frame on its own."""

    def __init__(
        self,
        model: MarigoldNormals | BufferAnytimeNormals,
        *,
        info: ModelInfo,
        device: torch.device,
        processing_size: int,
        decode_chunk: int,
        precision: Precision = "fp32",
    ):
        if processing_size < 0:
            raise ValueError(f"processing size must be >= 0 (0 = input resolution), got {processing_size}")
        if decode_chunk < 1:
            raise ValueError(f"decode chunk must be >= 1 frame, got {decode_chunk}")
        self.model = model
        self.info = info
        self.device = device
        self.processing_size = processing_size
        self.decode_chunk = decode_chunk
        self.precision = precision
        self.model_axes = MODEL_AXES  # the network's own convention, converted away in `predict`
        self.output_axes = NORMAL_AXES

    @property
    def image_model(self) -> MarigoldNormals:
        return self.model.image_model if isinstance(self.model, BufferAnytimeNormals) else self.model

    @property
    def max_frames(self) -> int | None:
        return self.model.max_frames if isinstance(self.model, BufferAnytimeNormals) else None

    @torch.no_grad()
    def predict(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected frames (T,3,H,W), got {tuple(frames.shape)}")
        if self.max_frames is not None and frames.shape[0] > self.max_frames:
            raise ValueError(f"a window holds at most {self.max_frames} frames, got {frames.shape[0]}")
        t, _, height, width = frames.shape
        size = processing_shape(height, width, self.processing_size)
        x = frames.to(self.device, torch.float32).clamp(0.0, 1.0)
        if size != (height, width):
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        pad_h, pad_w = (-size[0]) % LATENT_FACTOR, (-size[1]) % LATENT_FACTOR
        x = F.pad(x * 2.0 - 1.0, (0, pad_w, 0, pad_h), mode="replicate")  # (T, 3, H8, W8)

        chunks = x.split(self.decode_chunk)
        latents = torch.cat([self.image_model.encode(c) for c in chunks])  # (T, 4, H8/8, W8/8)
        # Only the denoiser autocasts: the VAE's activations can overflow half floats, and it is the cheap part.
        with autocast(self.precision, self.device):
            if isinstance(self.model, BufferAnytimeNormals):
                clean = self.model.predict_latent(latents.unsqueeze(0)).squeeze(0)
            else:
                clean = torch.cat([self.model.predict_latent(c) for c in latents.split(self.decode_chunk)])
        clean = clean.float()  # (T, 4, H8/8, W8/8)
        normals = self.image_model.decode(clean, chunk=self.decode_chunk)[..., : size[0], : size[1]]
        if size != (height, width):
            normals = F.interpolate(normals, size=(height, width), mode="bilinear", align_corners=False)
        normals = F.normalize(normals, dim=1, eps=1e-6)
        return convert_axes(normals, MODEL_AXES, NORMAL_AXES, axis=1)
