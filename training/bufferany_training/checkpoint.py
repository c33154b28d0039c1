"""Training checkpoints: everything needed to continue a run exactly, written atomically.

`RUN/checkpoints/step_00001000/` holds
    temporal.safetensors + temporal.json   the trained weights (loadable by the predictors as is)
    optimizer.safetensors                  AdamW's per-parameter tensors
    rng.safetensors                        each rank's torch (and CUDA) generator state
    state.json                             step, optimizer hyperparameters and scalar state, config
The folder is assembled under a temporary name and renamed into place, then `RUN/checkpoints/latest`
(the folder's name) is replaced atomically: a run killed at any moment leaves the previous
checkpoint intact and `latest` pointing at a complete one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from bufferany_core.atomic import atomic_write
from bufferany_core.errors import BadArgumentsError, OutputNotWritableError

LATEST = "latest"
WEIGHTS = "temporal.safetensors"
STATE_FORMAT = "bufferany/train-checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    folder: Path
    step: int
    state: dict[str, Any]

    @property
    def weights(self) -> Path:
        return self.folder / WEIGHTS


def optimizer_to_files(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    """An optimizer state_dict as (tensors, JSON-able rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_files(tensors: dict[str, torch.Tensor], rest: dict) -> dict:
    per_param: dict[int, dict[str, Any]] = {}
    for name, value in tensors.items():
        index, key = name.split(".", 1)
        per_param.setdefault(int(index), {})[key] = value
    for index, values in rest["scalars"].items():
        per_param.setdefault(int(index), {}).update(values)
    return {"state": per_param, "param_groups": rest["param_groups"]}


def rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def save_checkpoint(
    run_dir: Path,
    *,
    step: int,
    save_weights: Callable[[Path], None],
    optimizer: torch.optim.Optimizer,
    rng_states: list[dict[str, torch.Tensor]],
    extra: dict[str, Any],
    keep: int,
) -> Path:
    """Write checkpoint `step` (rank 0 only; `rng_states` holds every rank's, in rank order),
    point `latest` at it, and delete all but the newest `keep`. Returns its folder."""
    from safetensors.torch import save_file

    root = Path(run_dir) / "checkpoints"
    final = root / f"step_{step:08d}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".tmp-{final.name}-"))
        try:
            save_weights(tmp / WEIGHTS)
            tensors, rest = optimizer_to_files(optimizer.state_dict())
            save_file(tensors, str(tmp / "optimizer.safetensors"))
            rng = {f"rank{r}.{k}": v.contiguous() for r, s in enumerate(rng_states) for k, v in s.items()}
            save_file(rng, str(tmp / "rng.safetensors"))
            state = {"format": STATE_FORMAT, "step": step, "world_size": len(rng_states), "optimizer": rest, **extra}
            (tmp / "state.json").write_text(json.dumps(state, indent=1) + "\n")
            if final.exists():  # the same step saved again (a resumed run that stopped right here):
                # move the old one aside first, so a crash at any moment leaves a complete folder
                # under the final name or beside it, never zero checkpoints (keep=1 included)
                aside = root / f".old-{final.name}-{os.getpid()}"
                shutil.rmtree(aside, ignore_errors=True)
                os.replace(final, aside)
                try:
                    os.replace(tmp, final)
                except OSError:
                    os.replace(aside, final)
                    raise
                shutil.rmtree(aside, ignore_errors=True)
            else:
                os.replace(tmp, final)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        atomic_write(root / LATEST, lambda path: _write_text(path, final.name + "\n"))
        older = sorted(p for p in root.glob("step_*") if p.is_dir() and p.name < final.name)
        for stale in older[: max(0, len(older) - (keep - 1))]:
            shutil.rmtree(stale, ignore_errors=True)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write checkpoint {final}: {exc}") from exc
    return final


def _write_text(path: Path, text: str) -> None:
    Path(path).write_text(text)


def latest_checkpoint(run_dir: Path) -> Checkpoint | None:
    """The checkpoint `RUN/checkpoints/latest` names, or None for a fresh run folder."""
    root = Path(run_dir) / "checkpoints"
    pointer = root / LATEST
    if not pointer.is_file():
        return None
    folder = root / pointer.read_text().strip()
    if not folder.exists():  # a save of the same step stopped between its two renames
        for aside in sorted(root.glob(f".old-{folder.name}-*")):
            os.replace(aside, folder)
            break
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise BadArgumentsError(f"checkpoint {folder} (named by {pointer}) is unreadable: {exc}") from exc
    if state.get("format") != STATE_FORMAT:
        raise BadArgumentsError(f"{folder}/state.json is not a bufferany training checkpoint")
    return Checkpoint(folder=folder, step=int(state["step"]), state=state)


def load_optimizer_and_rng(checkpoint: Checkpoint, optimizer: torch.optim.Optimizer, *, rank: int) -> None:
    """Restore the optimizer's state and this rank's generators from `checkpoint`."""
    from safetensors.torch import load_file

    tensors = load_file(str(checkpoint.folder / "optimizer.safetensors"))
    optimizer.load_state_dict(optimizer_from_files(tensors, checkpoint.state["optimizer"]))
    rng = load_file(str(checkpoint.folder / "rng.safetensors"))
    mine = {k.split(".", 1)[1]: v for k, v in rng.items() if k.startswith(f"rank{rank}.")}
    if mine:  # a run resumed on more ranks than saved it: the new ranks keep their fresh generators
        set_rng_state(mine)
