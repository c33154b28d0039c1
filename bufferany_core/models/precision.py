"""Inference precision: which float type the heavy layers run in under CUDA autocast.

`fp32` runs everything in float32; `fp16` and `bf16` autocast the backbone and keep each model's
final head in float32 (the models decide where). Half precision is a CUDA-only choice: the CPU
always runs float32, and asking for half floats on it is refused rather than silently ignored.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Literal

import torch

from bufferany_core.errors import BadArgumentsError
from bufferany_core.jobs import PRECISIONS

Precision = Literal["fp32", "fp16", "bf16"]
AUTOCAST_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def choose_precision(precision: str, device: str | torch.device) -> Precision:
    """`auto` -> fp16 on CUDA, fp32 elsewhere, where `device` is a device or a job's device name
    (`auto`: CUDA when this machine has one). fp16/bf16 on a CPU device raise BadArgumentsError; with
    device `auto` they are refused only where the model loads, so a workstation without CUDA can still
    plan and submit a farm job for GPU nodes."""
    if precision not in PRECISIONS:
        raise BadArgumentsError(f"precision {precision!r}: expected one of {', '.join(PRECISIONS)}")
    name = str(device)
    if precision == "auto":
        cuda = torch.cuda.is_available() if name == "auto" else name.startswith("cuda")
        return "fp16" if cuda else "fp32"
    if precision != "fp32" and name != "auto" and not name.startswith("cuda"):
        raise BadArgumentsError(
            f"--precision {precision} needs a CUDA device and this job runs on {name} "
            "(use --precision auto or fp32 there)"
        )
    return precision  # type: ignore[return-value]


def check_precision(precision: str, device: torch.device) -> None:
    """A loader's check: `precision` is fp32, fp16 or bf16, and half floats run on CUDA only."""
    if precision not in ("fp32", *AUTOCAST_DTYPES):
        raise BadArgumentsError(f"precision {precision!r}: expected fp32, fp16 or bf16")
    choose_precision(precision, device)


def autocast(precision: Precision, device: torch.device) -> AbstractContextManager:
    """The autocast context for `precision` on `device` (none for fp32)."""
    if precision not in AUTOCAST_DTYPES:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])
