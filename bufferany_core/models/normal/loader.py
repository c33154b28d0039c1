"""`load_normal_predictor`: resolve weights, build the image prior or the video model, wrap it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from bufferany_core.errors import BadArgumentsError
from bufferany_core.models.api import ModelInfo
from bufferany_core.models.normal import specs
from bufferany_core.models.normal.build import image_model_from_folder, random_image_model, video_model
from bufferany_core.models.normal.configs import (
    DEFAULT_NORMAL_MODEL,
    DEFAULT_OVERLAP,
    DEFAULT_WINDOW,
    MODELS,
    TEMPORAL_CONFIGS,
)
from bufferany_core.models.normal.predictor import NormalPredictor
from bufferany_core.models.normal.temporal_weights import apply_temporal_state, read_temporal_weights
from bufferany_core.models.precision import Precision, check_precision
from bufferany_core.models.weights import RandomWeights, resolve, sha256_of


def load_normal_predictor(
    name: str = DEFAULT_NORMAL_MODEL,
    *,
    weights: Path | RandomWeights | None = None,
    models_dir: Path | None = None,
    device: str | torch.device = "cpu",
    processing_size: int = 768,
    temporal_weights: Path | None = None,
    decode_chunk: int = 4,
    precision: Precision = "fp32",
) -> NormalPredictor:
    """Load a normal model by name (configs.MODELS).

    `weights`: None (the registered Marigold-E2E-FT folder: `models_dir`, $BUFFERANY_MODELS or the
    Hugging Face cache), a diffusers folder, or `RandomWeights(seed)` (the only choice for "*-tiny").
    `temporal_weights`: a `.safetensors` file of the video model's temporal blocks; without one the
    blocks are zero-initialised (the video model then equals the image prior) and the output is
    marked untrained. `precision` fp16/bf16 (CUDA only) autocasts the denoiser; the VAE encodes
    and decodes in float32.
    """
    if name not in MODELS:
        raise BadArgumentsError(f"unknown normal model {name!r}; known: {', '.join(MODELS)}")
    spec = MODELS[name]
    if spec.random_only:
        weights = RandomWeights() if weights is None else weights
        if not isinstance(weights, RandomWeights):
            raise BadArgumentsError(
                f"{name} is a test model with random weights only (--weights random[:SEED])"
            )
    if temporal_weights is not None and not spec.video:
        raise BadArgumentsError(f"{name} is an image model: temporal weights apply to the video models only")
    if processing_size < 0 or decode_chunk < 1:
        raise BadArgumentsError(
            f"processing size must be >= 0 (got {processing_size}) and decode chunk >= 1 (got {decode_chunk})"
        )

    device = torch.device(device)
    check_precision(precision, device)

    if isinstance(weights, RandomWeights):
        image = random_image_model(spec.size, seed=weights.seed)
        hashes: list[str] | None = None
    else:
        folder = resolve(specs.MARIGOLD_E2E_FT_NORMALS, path=weights, models_dir=models_dir)
        if not folder.is_dir():
            raise BadArgumentsError(f"normal weights {folder} must be a diffusers folder, not a file")
        image = image_model_from_folder(folder)
        hashes = [sha256_of(folder / "unet"), sha256_of(folder / "vae")]
    untrained = isinstance(weights, RandomWeights)

    model: torch.nn.Module = image
    if spec.video:
        config = TEMPORAL_CONFIGS[spec.size]
        if temporal_weights is not None:
            state, config, points = read_temporal_weights(temporal_weights)
        seed = weights.seed if isinstance(weights, RandomWeights) and temporal_weights is None else None
        model = video_model(image, config, seed=seed)
        if temporal_weights is None:
            untrained = True
        else:
            apply_temporal_state(model, state, points, temporal_weights)
            if hashes is not None:  # provenance of trained blocks on real (not random) prior weights
                hashes.append(sha256_of(temporal_weights))

    info = ModelInfo(
        pass_name="normal",
        model_id=name,
        weights_sha256=hashlib.sha256("".join(hashes).encode()).hexdigest() if hashes else None,
        untrained=untrained,
        default_window=DEFAULT_WINDOW,
        default_overlap=DEFAULT_OVERLAP if spec.video else 0,
    )
    return NormalPredictor(
        model.to(device).eval(),
        info=info,
        device=device,
        processing_size=processing_size,
        decode_chunk=decode_chunk,
        precision=precision,
    )
