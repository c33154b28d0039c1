"""Temporal weights of the normal video model, in the project's shared format
(bufferany_core.models.temporal_weights: `<name>.safetensors` + `<name>.json`). The JSON records
the temporal block hyperparameters and the UNet layers the blocks follow."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import torch

from bufferany_core.errors import BadArgumentsError
from bufferany_core.models import temporal_weights as shared
from bufferany_core.models.normal.video import BufferAnytimeNormals, insertion_points
from bufferany_core.models.temporal import TemporalBlockConfig

FORMAT = "bufferany-normal-temporal"
VERSION = 1


def save_temporal_weights(model: BufferAnytimeNormals, path: Path, *, extra: Mapping | None = None) -> None:
    """Write the temporal blocks of `model` (only those: the prior stays in its own folder), with
    `extra` fields (e.g. training's step count and data folder) recorded in the JSON beside them."""
    config = {
        **(extra or {}),
        "format": FORMAT,
        "version": VERSION,
        "temporal": dataclasses.asdict(model.temporal.config),
        "insertion_points": [list(p) for p in insertion_points(model.image_model.unet)],
    }
    shared.save_temporal_weights(path, model.temporal.state_dict(), config)


def read_temporal_weights(path: Path) -> tuple[dict[str, torch.Tensor], TemporalBlockConfig, list]:
    """(state dict, block config, insertion points) of a file written by `save_temporal_weights`."""
    state, config = shared.load_temporal_weights(path)
    try:
        if config.get("format") != FORMAT or config.get("version") != VERSION:
            raise ValueError(f"expected format {FORMAT!r} version {VERSION}")
        return state, TemporalBlockConfig(**config["temporal"]), config["insertion_points"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadArgumentsError(
            f"{shared.config_path(path)} is not a normal temporal weights config: {exc}"
        ) from exc


def load_temporal_weights(model: BufferAnytimeNormals, path: Path) -> None:
    """Load a file written by `save_temporal_weights` into `model` (strict)."""
    state, config, points = read_temporal_weights(path)
    if config != model.temporal.config:
        raise BadArgumentsError(f"temporal weights {path} were saved for other temporal blocks: {config}")
    apply_temporal_state(model, state, points, path)


def apply_temporal_state(model: BufferAnytimeNormals, state: dict, points: list, path: Path) -> None:
    if points != [list(p) for p in insertion_points(model.image_model.unet)]:
        raise BadArgumentsError(f"temporal weights {path} were saved for another UNet architecture")
    try:
        model.temporal.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BadArgumentsError(f"temporal weights {path} do not match the model: {exc}") from exc
