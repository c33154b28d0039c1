"""Loading predictors once and keeping them between jobs."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from bufferany_core.devices import choose_device
from bufferany_core.errors import MissingWeightsError
from bufferany_core.models.api import PassName, PassPredictor
from bufferany_core.models.catalog import get_model_entry
from bufferany_core.models.precision import choose_precision
from bufferany_core.models.weights import RandomWeights, parse_weights_arg


@dataclass(frozen=True)
class PredictorKey:
    pass_name: PassName
    model: str
    weights: str | None  # str(path) or "random:SEED"
    temporal_weights: tuple[str, int, int] | None  # (path, size, mtime): a file retrained in place reloads
    models_dir: str | None
    device: str
    processing_size: int  # resolved: the catalogue's default when none was asked for
    default_size: bool  # none was asked for: the family's own size rules apply (depth: the official ones)
    precision: str  # resolved: fp32 | fp16 | bf16
    downscale: str = "none"  # RenderJob.downscale: how frames bigger than the model's input are shrunk
    preprocessing: str = "bufferany"  # normals: "official" under --schedule official (models.normal.preprocess)


def _weights_key(weights: Path | RandomWeights | None) -> str | None:
    if isinstance(weights, RandomWeights):
        return f"random:{weights.seed}"
    return None if weights is None else str(weights)


def _file_key(path: Path) -> tuple[str, int, int]:
    path = path.expanduser().resolve()
    try:
        stat = path.stat()
    except FileNotFoundError:
        raise MissingWeightsError(f"temporal weights file {path} does not exist") from None
    return str(path), stat.st_size, stat.st_mtime_ns


class PredictorCache:
    """Loaded predictors kept between jobs (the server holds one for its lifetime), keyed by model,
    weights, temporal weights, models folder, device, processing size and precision. Thread-safe.

    At most `max_models` stay loaded: every retrained temporal-weights file or new precision is a new
    key, so a long-lived server would otherwise keep them all. The least recently used one goes first.
    """

    def __init__(self, *, max_models: int = 4) -> None:
        if max_models < 1:
            raise ValueError(f"max_models must be at least 1, got {max_models}")
        self.max_models = max_models
        self.loads = 0  # predictors built since creation; a cache hit adds nothing
        self._loaded: OrderedDict[PredictorKey, PassPredictor] = OrderedDict()  # least recently used first
        self._lock = threading.Lock()

    def get(
        self,
        pass_name: PassName,
        model: str | None,
        *,
        weights: str | None = None,
        temporal_weights: str | None = None,
        models_dir: str | None = None,
        device: str = "auto",
        processing_size: int | None = None,
        precision: str = "auto",
        downscale: str = "none",
        preprocessing: str = "bufferany",
    ) -> PassPredictor:
        entry = get_model_entry(pass_name, model)  # an unknown name fails here, before anything loads
        parsed = parse_weights_arg(weights)
        chosen = choose_device(device)
        key = PredictorKey(
            pass_name=pass_name,
            model=entry.name,
            weights=_weights_key(parsed),
            temporal_weights=None if temporal_weights is None else _file_key(Path(temporal_weights)),
            models_dir=models_dir,
            device=str(chosen),
            # Resolved; the default and its value asked for explicitly differ (the default brings
            # the official size rules for depth, an explicit size is used as given).
            processing_size=entry.processing_size if processing_size is None else processing_size,
            default_size=processing_size is None,
            precision=choose_precision(precision, chosen),
            downscale=downscale,
            preprocessing=preprocessing if pass_name == "normal" else "bufferany",
        )
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
            # Evict before loading, so the device never holds max_models + 1 predictors at once.
            while len(self._loaded) >= self.max_models:
                self._evict_oldest()
            predictor = _load(key, parsed)
            self.loads += 1
            self._loaded[key] = predictor
            return predictor

    def entries(self) -> list[tuple[PredictorKey, PassPredictor]]:
        """The loaded predictors, least recently used first."""
        with self._lock:
            return list(self._loaded.items())

    def clear(self) -> None:
        with self._lock:
            self._loaded.clear()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def _evict_oldest(self) -> None:
        key = next(iter(self._loaded))
        del self._loaded[key]  # a job still rendering with it keeps its own reference until it ends
        if key.device.startswith("cuda"):
            torch.cuda.empty_cache()  # hand the freed blocks back so other processes see the memory


def _load(key: PredictorKey, weights: Path | RandomWeights | None) -> PassPredictor:
    # Both families load with the same keywords; each is imported only when asked for (diffusers is slow).
    load: Callable[..., PassPredictor]
    if key.pass_name == "depth":
        from bufferany_core.models.depth import load_depth_predictor as load
    else:
        from bufferany_core.models.normal import load_normal_predictor as load
    # Only the normal family has a preprocessing choice (depth's official rules are its default size's).
    extra = {"preprocessing": key.preprocessing} if key.pass_name == "normal" else {}
    return load(
        key.model,
        weights=weights,
        models_dir=Path(key.models_dir) if key.models_dir else None,
        device=torch.device(key.device),
        precision=key.precision,
        processing_size=None if key.default_size else key.processing_size,
        temporal_weights=Path(key.temporal_weights[0]) if key.temporal_weights else None,
        downscale=key.downscale,
        **extra,
    )
