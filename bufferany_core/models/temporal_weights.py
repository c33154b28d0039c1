"""Temporal weights on disk: `NAME.safetensors` holding only what training changed, and `NAME.json`
beside it holding the configuration needed to rebuild the module. The prior's weights are never
copied into these files: they keep coming from the official checkpoints.

Shared by the depth and normal families; the config dict's content is the family's business.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from bufferany_core.atomic import atomic_write
from bufferany_core.errors import BadArgumentsError, MissingWeightsError, OutputNotWritableError


def config_path(weights_path: Path) -> Path:
    return weights_path.with_suffix(".json")


def save_temporal_weights(path: Path, state: Mapping, config: Mapping) -> None:
    """Write `path` (.safetensors) and its JSON config atomically (temporary file, then rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise BadArgumentsError(f"temporal weights must be written as .safetensors, got {path}")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in state.items()}
    try:
        atomic_write(config_path(path), lambda tmp: tmp.write_text(json.dumps(dict(config), indent=2) + "\n"))
        atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write temporal weights {path}: {exc}") from exc


def load_temporal_weights(path: Path) -> tuple[dict, dict]:
    """Read (state dict on the CPU, config dict) written by `save_temporal_weights`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"temporal weights file {path} does not exist")
    if path.suffix != ".safetensors":
        raise BadArgumentsError(f"temporal weights {path} must be a .safetensors file")
    cfg_path = config_path(path)
    if not cfg_path.is_file():
        raise MissingWeightsError(f"temporal weights {path} have no config beside them: expected {cfg_path}")
    try:
        config = json.loads(cfg_path.read_text())
    except (OSError, ValueError) as exc:
        raise BadArgumentsError(f"temporal weights config {cfg_path} is not readable JSON: {exc}") from exc
    if not isinstance(config, dict):
        raise BadArgumentsError(f"temporal weights config {cfg_path} must hold a JSON object")
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise BadArgumentsError(
            f"temporal weights {path} are not a readable safetensors file: {exc}"
        ) from exc
    return state, config
