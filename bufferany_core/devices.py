"""Choosing the torch device a command runs on (shared by the pipeline and the stabiliser)."""

from __future__ import annotations

import torch

from bufferany_core.errors import BadArgumentsError


def choose_device(name: str) -> torch.device:
    """`auto`: the first CUDA device when there is one, else the CPU; `cuda[:N]` must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadArgumentsError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise BadArgumentsError(f"--device {name}: no CUDA device on this machine (use auto or cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise BadArgumentsError(f"--device {name}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        raise BadArgumentsError(f"--device {name!r}: expected auto, cpu, cuda or cuda:N")
    return device
