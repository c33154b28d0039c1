"""What the trainer needs from a task (depth or normal) beyond its loss: the temporal weights it
saves and resumes from, in the one format of `bufferany_core.models.temporal_weights`."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from bufferany_core.models.temporal_weights import (
    TemporalModel,
    load_temporal_weights,
    save_temporal_weights,
)

Model = TypeVar("Model", bound=TemporalModel)


class TemporalWeightsTask(Generic[Model]):
    """Base of the training tasks: `model` is the video model being trained and `prior_sha256` the
    prior weights it was built on (None for random ones), recorded in every file it saves."""

    model: Model
    prior_sha256: str | None

    def save_weights(self, path: Path, *, provenance: Mapping[str, Any]) -> None:
        save_temporal_weights(path, self.model, prior_sha256=self.prior_sha256, provenance=provenance)

    def load_weights(self, path: Path) -> None:
        load_temporal_weights(path, self.model)
