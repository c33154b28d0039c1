"""Saving and loading the trained part of a Buffer Anytime depth model (safetensors + JSON config)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from bufferany_core.errors import BadArgumentsError
from bufferany_core.models.depth.buffer_anytime import BufferAnytimeConfig, BufferAnytimeDepth
from bufferany_core.models.temporal_weights import load_temporal_weights, save_temporal_weights


def save_temporal_depth(
    path: Path, model: BufferAnytimeDepth, *, config: BufferAnytimeConfig, extra: Mapping | None = None
) -> None:
    """Write `model.temporal_state_dict()` to `path` (.safetensors) and `config` (plus `extra`
    fields, e.g. the prior's sha256 or the training step) to the JSON file beside it."""
    if (
        config.train_head != (model.video_head is not None)
        or tuple(config.insert_after) != model.insert_after
    ):
        raise BadArgumentsError(f"config {config} does not describe this model's temporal part")
    save_temporal_weights(Path(path), model.temporal_state_dict(), {**(extra or {}), **config.to_dict()})


def load_temporal_depth(path: Path) -> tuple[BufferAnytimeConfig, dict[str, torch.Tensor]]:
    """The config and temporal state dict saved by `save_temporal_depth`."""
    state, raw = load_temporal_weights(Path(path))
    return BufferAnytimeConfig.from_dict(raw, source=str(path)), state
