"""One process per GPU under torchrun (or a single process without it): rank, device, collectives."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from bufferany_core.errors import BadArgumentsError


@dataclass(frozen=True)
class Context:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup(device: str) -> Context:
    """Join the process group torchrun describes (RANK, WORLD_SIZE, LOCAL_RANK in the environment):
    NCCL when the ranks train on CUDA, Gloo on the CPU. `device` "auto" takes cuda:LOCAL_RANK when
    CUDA is present."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):
        raise BadArgumentsError(f"run.device {device!r}: expected auto, cpu or cuda (torchrun assigns the GPU)")
    if device == "cuda":
        if not torch.cuda.is_available():
            raise BadArgumentsError("run.device cuda: no CUDA device on this machine")
        if local_rank >= torch.cuda.device_count():
            raise BadArgumentsError(
                f"local rank {local_rank} has no GPU: this machine has {torch.cuda.device_count()}"
            )
        torch.cuda.set_device(local_rank)
        chosen = torch.device("cuda", local_rank)
    else:
        chosen = torch.device("cpu")
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if chosen.type == "cuda" else "gloo", timeout=timedelta(minutes=30)
        )
    return Context(rank=rank, world_size=world_size, local_rank=local_rank, device=chosen)


def teardown(context: Context) -> None:
    if context.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(context: Context) -> None:
    if context.distributed:
        dist.barrier()


def mean_over_ranks(context: Context, values: dict[str, torch.Tensor]) -> dict[str, float]:
    """Average scalar metrics over the ranks (every rank must call it with the same keys)."""
    keys = sorted(values)
    stacked = torch.stack([values[k].detach().float().to(context.device) for k in keys])
    if context.distributed:
        dist.all_reduce(stacked, op=dist.ReduceOp.SUM)
        stacked /= context.world_size
    return dict(zip(keys, stacked.tolist(), strict=True))


def gather_objects(context: Context, obj):
    """Every rank's `obj`, in rank order (a list of one without torchrun)."""
    if not context.distributed:
        return [obj]
    out = [None] * context.world_size
    dist.all_gather_object(out, obj)
    return out
