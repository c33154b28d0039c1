"""Loading a depth model by name into a `PassPredictor` for the pipeline."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bufferany_core.errors import BadArgumentsError, MissingWeightsError
from bufferany_core.models.api import ModelInfo
from bufferany_core.models.depth.buffer_anytime import BufferAnytimeDepth
from bufferany_core.models.depth.catalog import (
    DEFAULT_DEPTH_MODEL,
    DEFAULT_OVERLAP,
    DEFAULT_WINDOW,
    build_depth_model,
    get_entry,
)
from bufferany_core.models.depth.depth_anything import DepthAnythingV2
from bufferany_core.models.depth.preprocess import to_model_input, to_plate_resolution
from bufferany_core.models.depth.temporal_io import load_temporal_depth
from bufferany_core.models.precision import Precision, autocast, check_precision
from bufferany_core.models.temporal import zero_initialised_prefixes
from bufferany_core.models.weights import (
    RandomWeights,
    deterministic_state_dict,
    get_spec,
    load_state_dict_file,
    resolve,
    sha256_of,
    state_dict_mismatch,
)

DEFAULT_PROCESSING_SIZE = 518


class DepthPredictor:
    """A loaded depth model: `predict(frames (T, 3, H, W) sRGB [0, 1]) -> (T, 1, H, W)` relative
    inverse depth at the frames' resolution. Image models predict frame by frame, video models the
    whole window jointly."""

    def __init__(
        self,
        *,
        model: nn.Module,
        info: ModelInfo,
        device: torch.device,
        processing_size: int,
        precision: Precision,
    ):
        self.model = model
        self.info = info
        self.device = device
        self.processing_size = processing_size
        self.precision = precision
        self.joint = not isinstance(model, DepthAnythingV2)
        self.max_frames: int | None = getattr(model, "max_frames", None)

    def predict(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.ndim != 4 or frames.shape[1] != 3:
            raise ValueError(f"expected frames (T, 3, H, W), got {tuple(frames.shape)}")
        if not frames.is_floating_point():
            raise ValueError(f"expected float sRGB frames in [0, 1], got {frames.dtype}")
        if self.max_frames is not None and frames.shape[0] > self.max_frames:
            raise ValueError(
                f"{self.info.model_id} takes windows of at most {self.max_frames} frames, got {frames.shape[0]}"
            )
        height, width = frames.shape[-2:]
        x = to_model_input(frames.to(self.device, torch.float32), self.processing_size)
        with torch.inference_mode(), autocast(self.precision, self.device):
            if self.joint:
                depth = self.model(x.unsqueeze(0))[0]  # (T, h, w)
            else:
                depth = torch.cat([self.model(frame.unsqueeze(0)) for frame in x])
        return to_plate_resolution(depth.float().unsqueeze(1), height, width)


def load_depth_predictor(
    name: str = DEFAULT_DEPTH_MODEL,
    *,
    weights: Path | RandomWeights | None = None,
    models_dir: Path | None = None,
    device: str | torch.device = "cpu",
    processing_size: int | None = None,
    temporal_weights: Path | None = None,
    precision: Precision = "fp32",
    allow_download: bool = False,
) -> DepthPredictor:
    """Build the named model, load its weights and wrap it for the pipeline.

    weights: None resolves the official file from the registry (models folder, Hugging Face cache);
    a path loads that `.pth` (weights only) or `.safetensors` file; `RandomWeights(seed)` builds
    deterministic untrained weights. For buffer-anytime models these are the prior's weights and
    `temporal_weights` (a `.safetensors` with its `.json` config) the trained temporal part; without
    it the temporal blocks are zero-initialised and the model predicts what its prior predicts.
    """
    entry = get_entry(name)
    device = torch.device(device)
    size = DEFAULT_PROCESSING_SIZE if processing_size is None else processing_size
    if size < 14:
        raise BadArgumentsError(f"processing size {size} is too small (at least 14 pixels)")
    check_precision(precision, device)
    if temporal_weights is not None and entry.family != "buffer-anytime":
        raise BadArgumentsError(f"{name} has no temporal weights to load (only buffer-anytime models do)")

    config, temporal_state = (
        (None, None) if temporal_weights is None else load_temporal_depth(Path(temporal_weights))
    )
    model = build_depth_model(name, config=config)
    prior = model.prior if isinstance(model, BufferAnytimeDepth) else model
    weights_sha256 = _load_prior(
        prior, weights, name=name, models_dir=models_dir, allow_download=allow_download
    )
    untrained = weights_sha256 is None

    if isinstance(model, BufferAnytimeDepth):
        model.load_prior_state_dict(prior.state_dict())  # keeps a trainable head copy in step
        if temporal_state is not None:
            try:
                model.load_temporal_state_dict(temporal_state)
            except ValueError as exc:
                raise BadArgumentsError(f"temporal weights {temporal_weights}: {exc}") from None
            if weights_sha256 is not None:
                weights_sha256 = f"{weights_sha256}+{sha256_of(Path(temporal_weights))}"
        else:
            untrained = True
            if isinstance(weights, RandomWeights):
                _randomise_temporal_blocks(model, seed=weights.seed)

    model.requires_grad_(False).eval().to(device)
    info = ModelInfo(
        pass_name="depth",
        model_id=name,
        weights_sha256=weights_sha256,
        untrained=untrained,
        default_window=DEFAULT_WINDOW,
        default_overlap=DEFAULT_OVERLAP,
    )
    return DepthPredictor(model=model, info=info, device=device, processing_size=size, precision=precision)


def _load_prior(
    prior: nn.Module,
    weights: Path | RandomWeights | None,
    *,
    name: str,
    models_dir: Path | None,
    allow_download: bool,
) -> str | None:
    """Load the official (or random) weights into `prior`; returns the file's sha256, None for random."""
    if isinstance(weights, RandomWeights):
        _load_strict(
            prior, deterministic_state_dict(prior, seed=weights.seed), name=name, source="random weights"
        )
        return None
    path = Path(weights) if weights is not None else _registry_path(name, models_dir, allow_download)
    if not path.is_file():
        raise MissingWeightsError(f"weights file {path} does not exist (model {name})")
    _load_strict(prior, load_state_dict_file(path), name=name, source=str(path))
    return sha256_of(path)


def _randomise_temporal_blocks(model: BufferAnytimeDepth, *, seed: int) -> None:
    """Deterministic random temporal blocks whose output projections stay zero (still the prior)."""
    blocks = model.temporal_blocks
    state = deterministic_state_dict(blocks, seed=seed, skip_prefixes=zero_initialised_prefixes(blocks))
    blocks.load_state_dict(state, strict=True)


def _registry_path(name: str, models_dir: Path | None, allow_download: bool) -> Path:
    entry = get_entry(name)
    if entry.weights is None:
        raise BadArgumentsError(f"{name} is a test model without published weights: use random weights")
    return resolve(get_spec(entry.weights), models_dir=models_dir, allow_download=allow_download)


def _load_strict(module: nn.Module, state: dict, *, name: str, source: str) -> None:
    mismatch = state_dict_mismatch(module, state)
    if mismatch is not None:
        raise BadArgumentsError(f"weights {source} do not fit model {name}: {mismatch}")
    module.load_state_dict(state, strict=True)
