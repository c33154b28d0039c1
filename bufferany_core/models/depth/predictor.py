"""Loading a depth model by name into a `PassPredictor` for the pipeline."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from bufferany_core.errors import BadArgumentsError, MissingWeightsError
from bufferany_core.models.api import ModelInfo
from bufferany_core.models.catalog import ModelEntry, get_model_entry
from bufferany_core.models.depth.buffer_anytime import BufferAnytimeConfig, BufferAnytimeDepth
from bufferany_core.models.depth.build import DepthModel, build_depth_model
from bufferany_core.models.depth.depth_anything import DepthAnythingV2
from bufferany_core.models.depth.preprocess import resize_for_model, resize_officially, to_plate_resolution
from bufferany_core.models.precision import Precision, autocast, check_precision
from bufferany_core.models.temporal import zero_initialised_prefixes
from bufferany_core.models.temporal_weights import read_temporal_weights
from bufferany_core.models.weights import (
    RandomWeights,
    deterministic_state_dict,
    get_spec,
    load_state_dict_file,
    resolve,
    sha256_of,
    state_dict_mismatch,
)


class DepthPredictor:
    """A loaded depth model: `predict(frames (T, 3, H, W) sRGB [0, 1]) -> (T, 1, H, W)` relative
    inverse depth at the frames' resolution. Image models predict frame by frame, video models the
    whole window jointly. `official_sizes`: the processing size is the model's default, so the
    official inference's size rules apply (long side capped at 1280, lower size for wide plates);
    False when a size was asked for explicitly (used as given)."""

    def __init__(
        self,
        *,
        model: DepthModel,
        info: ModelInfo,
        device: torch.device,
        processing_size: int,
        precision: Precision,
        official_sizes: bool = False,
        downscale: str = "none",
    ):
        self.model = model
        self.downscale = downscale  # preprocess.DOWNSCALES: how frames bigger than the input are shrunk
        self.info = info
        self.device = device
        self.processing_size = processing_size
        self.official_sizes = official_sizes
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
        resize = resize_officially if self.official_sizes else resize_for_model
        x = self.model.normalize(resize(frames.to(self.device, torch.float32), self.processing_size, self.downscale))
        with torch.inference_mode(), autocast(self.precision, self.device):
            if self.joint:
                depth = self.model(x.unsqueeze(0))[0]  # (T, h, w)
            else:
                depth = torch.cat([self.model(frame.unsqueeze(0)) for frame in x])
        return to_plate_resolution(depth.float().unsqueeze(1), height, width)


def load_depth_predictor(
    name: str | None,
    *,
    weights: Path | RandomWeights | None = None,
    models_dir: Path | None = None,
    device: str | torch.device = "cpu",
    precision: Precision = "fp32",
    processing_size: int | None = None,
    temporal_weights: Path | None = None,
    downscale: str = "none",
) -> DepthPredictor:
    """Build the named model (None: the default depth model), load its weights and wrap it for the pipeline.

    weights: None resolves the official file from the registry (models folder, Hugging Face cache);
    a path loads that `.pth` (weights only) or `.safetensors` file; `RandomWeights(seed)` builds
    deterministic untrained weights. For buffer-anytime models these are the prior's weights and
    `temporal_weights` (a `.safetensors` with its `.json`, `models.temporal_weights`) the trained
    temporal part; without it the temporal blocks are zero-initialised and the model predicts what
    its prior predicts. `processing_size`: the bound on the frames' short side, used as given; None
    for the catalogue's (518) under the official size rules (`preprocess.official_sizes`).
    """
    entry = get_model_entry("depth", name)
    device = torch.device(device)
    size = entry.processing_size if processing_size is None else processing_size
    if size < 14:
        raise BadArgumentsError(f"processing size {size} is too small (at least 14 pixels)")
    check_precision(precision, device)
    if temporal_weights is not None and entry.architecture != "buffer-anytime":
        raise BadArgumentsError(f"{entry.name} has no temporal weights to load (only buffer-anytime models do)")

    temporal = None if temporal_weights is None else read_temporal_weights(temporal_weights, family="depth")
    config = None if temporal is None else BufferAnytimeConfig.from_dict(temporal.config, source=str(temporal.path))
    model = build_depth_model(entry.name, config=config)
    prior = model.prior if isinstance(model, BufferAnytimeDepth) else model
    weights_sha256 = _load_prior(prior, weights, entry=entry, models_dir=models_dir)
    untrained = weights_sha256 is None or (entry.video and not entry.trained_temporal)

    if isinstance(model, BufferAnytimeDepth):
        model.load_prior_state_dict(prior.state_dict())  # keeps a trainable head copy in step
        if temporal is not None:
            temporal.load_into(model)
            untrained = weights_sha256 is None
            if weights_sha256 is not None:
                weights_sha256 = f"{weights_sha256}+{temporal.temporal_sha256}"
        elif isinstance(weights, RandomWeights):
            _randomise_temporal_blocks(model, seed=weights.seed)

    model.requires_grad_(False).eval().to(device)
    info = ModelInfo(
        pass_name="depth",
        model_id=entry.name,
        weights_sha256=weights_sha256,
        untrained=untrained,
        default_window=entry.schedule.window,
        default_overlap=entry.schedule.overlap,
    )
    return DepthPredictor(
        model=model, info=info, device=device, processing_size=size, precision=precision,
        official_sizes=processing_size is None,
        downscale=downscale,
    )


def _load_prior(
    prior: nn.Module, weights: Path | RandomWeights | None, *, entry: ModelEntry, models_dir: Path | None
) -> str | None:
    """Load the official (or random) weights into `prior`; returns the file's sha256, None for random."""
    if isinstance(weights, RandomWeights):
        _load_strict(
            prior, deterministic_state_dict(prior, seed=weights.seed), name=entry.name, source="random weights"
        )
        return None
    path = Path(weights) if weights is not None else _registry_path(entry, models_dir)
    if not path.is_file():
        raise MissingWeightsError(f"weights file {path} does not exist (model {entry.name})")
    _load_strict(prior, load_state_dict_file(path), name=entry.name, source=str(path))
    return sha256_of(path)


def _randomise_temporal_blocks(model: BufferAnytimeDepth, *, seed: int) -> None:
    """Deterministic random temporal blocks whose output projections stay zero (still the prior)."""
    blocks = model.temporal_blocks
    state = deterministic_state_dict(blocks, seed=seed, skip_prefixes=zero_initialised_prefixes(blocks))
    blocks.load_state_dict(state, strict=True)


def _registry_path(entry: ModelEntry, models_dir: Path | None) -> Path:
    if entry.weights is None:
        raise BadArgumentsError(f"{entry.name} is a test model without published weights: use random weights")
    (spec_name,) = entry.weights  # a depth model loads one file (the prior's, for buffer-anytime)
    return resolve(get_spec(spec_name), models_dir=models_dir)


def _load_strict(module: nn.Module, state: dict, *, name: str, source: str) -> None:
    mismatch = state_dict_mismatch(module, state)
    if mismatch is not None:
        raise BadArgumentsError(f"weights {source} do not fit model {name}: {mismatch}")
    module.load_state_dict(state, strict=True)
