"""Loading a normal model by name into a `NormalPredictor`, the pipeline's `PassPredictor`.

Frames are resized so their longest edge is the processing size (bilinear, antialiased, as
Marigold does), padded to a multiple of 8 by edge replication, run through the model, cropped,
upsampled back to the plate, re-normalised to unit length and converted to the project's axes.
`preprocessing="official"` follows the official inference instead (`normal.preprocess`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F

from bufferany_core.conventions import NORMAL_AXES
from bufferany_core.errors import BadArgumentsError
from bufferany_core.models.api import ModelInfo
from bufferany_core.models.catalog import get_model_entry
from bufferany_core.models.depth.preprocess import area_shrink
from bufferany_core.models.normal.build import image_model_from_folder, random_image_model, video_model
from bufferany_core.models.normal.configs import MODEL_AXES, TEMPORAL_CONFIGS
from bufferany_core.models.normal.marigold import MarigoldNormals
from bufferany_core.models.normal.preprocess import (
    LATENT_FACTOR,
    Preprocessing,
    get_preprocessing,
    official_normalize,
    quantized_resize,
)
from bufferany_core.models.normal.preprocess import processing_shape as _processing_shape
from bufferany_core.models.normal.video import BufferAnytimeNormals
from bufferany_core.models.precision import Precision, autocast, check_precision
from bufferany_core.models.temporal import TemporalBlockConfig
from bufferany_core.models.temporal_weights import read_temporal_weights
from bufferany_core.models.weights import RandomWeights, get_spec, resolve, sha256_of
from bufferany_core.normal_space import convert_axes

__all__ = ["LATENT_FACTOR", "NormalPredictor", "load_normal_predictor", "processing_shape"]


def processing_shape(height: int, width: int, processing_size: int) -> tuple[int, int]:
    """(h, w) with the longest edge `processing_size` and the aspect kept; 0 keeps the input size."""
    return _processing_shape(height, width, processing_size)


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
        downscale: str = "none",
        preprocessing: str | Preprocessing = "bufferany",
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
        self.downscale = downscale  # "area": frames averaged down to the input (depth.preprocess.area_shrink)
        # "bufferany" (default) or "official" (the official inference's resizing; normal.preprocess)
        self.preprocessing = get_preprocessing(preprocessing)
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
        pre = self.preprocessing
        size = _processing_shape(height, width, self.processing_size, sizes=pre.sizes)
        x = frames.to(self.device, torch.float32).clamp(0.0, 1.0)
        if pre.quantize:  # the official rule: 8-bit values, resized in uint8
            x = quantized_resize(x, size).float() / 255.0
        else:
            shrunk = area_shrink(x, size) if self.downscale == "area" else None
            if shrunk is not None:
                x = shrunk
            elif size != (height, width):
                x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=True)
        x = self.model.normalize(x)
        if pre.fit == "pad":
            pad_h, pad_w = (-size[0]) % LATENT_FACTOR, (-size[1]) % LATENT_FACTOR
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")  # (T, 3, H8, W8)

        any_size = pre.fit == "stretch"  # the VAE floors the sides (the official inference)
        chunks = x.split(self.decode_chunk)
        latents = torch.cat([self.image_model.encode(c, any_size=any_size) for c in chunks])  # (T, 4, h, w)
        # Only the denoiser autocasts: the VAE's activations can overflow half floats, and it is the cheap part.
        with autocast(self.precision, self.device):
            if isinstance(self.model, BufferAnytimeNormals):
                clean = self.model.predict_latent(latents.unsqueeze(0)).squeeze(0)
            else:
                clean = torch.cat([self.model.predict_latent(c) for c in latents.split(self.decode_chunk)])
        clean = clean.float()  # (T, 4, h, w)
        decoded = self.image_model.decode_raw(clean, chunk=self.decode_chunk)
        if pre.fit == "pad":
            decoded = decoded[..., : size[0], : size[1]]
        if pre.renormalize:
            normals = F.normalize(decoded, dim=1, eps=1e-6)
            if normals.shape[-2:] != (height, width):
                normals = F.interpolate(normals, size=(height, width), mode="bilinear", align_corners=False)
            normals = F.normalize(normals, dim=1, eps=1e-6)
        else:  # the official post-processing: /(|n|+1e-5), resized (antialiased) to the input, clipped
            normals = official_normalize(decoded)
            if normals.shape[-2:] != (height, width):
                normals = F.interpolate(
                    normals, size=(height, width), mode="bilinear", align_corners=False, antialias=True
                )
            normals = normals.clamp(-1.0, 1.0)
        return convert_axes(normals, MODEL_AXES, NORMAL_AXES, axis=1)


def load_normal_predictor(
    name: str | None,
    *,
    weights: Path | RandomWeights | None = None,
    models_dir: Path | None = None,
    device: str | torch.device = "cpu",
    precision: Precision = "fp32",
    processing_size: int | None = None,
    temporal_weights: Path | None = None,
    decode_chunk: int = 4,
    downscale: str = "none",
    preprocessing: str | Preprocessing = "bufferany",
) -> NormalPredictor:
    """Load a normal model by name (None: the default normal model; `models.catalog.NORMAL_MODELS`).

    `weights`: None (the registered Marigold-E2E-FT folder: `models_dir`, $BUFFERANY_MODELS or the
    Hugging Face cache), a diffusers folder, or `RandomWeights(seed)` (the only choice for "*-tiny").
    `temporal_weights`: a `.safetensors` file of the video model's temporal blocks with its `.json`
    (`models.temporal_weights`); without one the blocks are zero-initialised (the video model then
    equals the image prior) and the output is marked untrained. `processing_size`: the frames' long
    edge, None for the catalogue's (768), 0 for the plate's size. `precision` fp16/bf16 (CUDA only)
    autocasts the denoiser; the VAE encodes and decodes in float32, `decode_chunk` frames at a time.
    `preprocessing`: "bufferany" (default: float resizing, pad to 8 and crop, unit normals after the
    final resize) or "official" (the official inference's: uint8 resizing, `int()` sizes, the VAE
    floors the size and the result is stretched back, no re-normalisation; `normal.preprocess`).
    """
    try:
        get_preprocessing(preprocessing)
    except ValueError as exc:
        raise BadArgumentsError(str(exc)) from None
    entry = get_model_entry("normal", name)
    if entry.weights is None:
        weights = RandomWeights() if weights is None else weights
        if not isinstance(weights, RandomWeights):
            raise BadArgumentsError(
                f"{entry.name} is a test model with random weights only (--weights random[:SEED])"
            )
    if temporal_weights is not None and not entry.video:
        raise BadArgumentsError(f"{entry.name} is an image model: temporal weights apply to the video models only")
    size = entry.processing_size if processing_size is None else processing_size
    if size < 0 or decode_chunk < 1:
        raise BadArgumentsError(
            f"processing size must be >= 0 (got {size}) and decode chunk >= 1 (got {decode_chunk})"
        )
    device = torch.device(device)
    check_precision(precision, device)

    if isinstance(weights, RandomWeights):
        image = random_image_model(entry.size, seed=weights.seed)
        hashes: list[str] | None = None
    else:
        (spec_name,) = entry.weights or ()  # one diffusers folder: UNet, VAE and text encoder
        folder = resolve(get_spec(spec_name), path=weights, models_dir=models_dir)
        if not folder.is_dir():
            raise BadArgumentsError(f"normal weights {folder} must be a diffusers folder, not a file")
        image = image_model_from_folder(folder)
        hashes = [sha256_of(folder / "unet"), sha256_of(folder / "vae")]
    untrained = isinstance(weights, RandomWeights)

    model: MarigoldNormals | BufferAnytimeNormals = image
    if entry.video:
        temporal = None if temporal_weights is None else read_temporal_weights(temporal_weights, family="normal")
        config = (
            TEMPORAL_CONFIGS[entry.size]
            if temporal is None
            else TemporalBlockConfig.from_dict(temporal.config.get("temporal"), source=str(temporal.path))
        )
        seed = weights.seed if isinstance(weights, RandomWeights) and temporal is None else None
        model = video_model(image, config, seed=seed)
        if temporal is None:
            untrained = True
        else:
            temporal.load_into(model)
            if hashes is not None:  # provenance of trained blocks on real (not random) prior weights
                hashes.append(temporal.temporal_sha256)

    info = ModelInfo(
        pass_name="normal",
        model_id=entry.name,
        weights_sha256=hashlib.sha256("".join(hashes).encode()).hexdigest() if hashes else None,
        untrained=untrained,
        default_window=entry.schedule.window,
        default_overlap=entry.schedule.overlap,
    )
    return NormalPredictor(
        model.to(device).eval(),
        info=info,
        device=device,
        processing_size=size,
        decode_chunk=decode_chunk,
        precision=precision,
        downscale=downscale,
        preprocessing=preprocessing,
    )
