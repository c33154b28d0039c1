"""Shared benchmark helpers: the machine line, timing with peak memory, one process per variant."""

from __future__ import annotations

import multiprocessing as mp
import platform
import resource
import time
from collections.abc import Callable


def machine(device: str) -> str:
    """One line naming the hardware and torch version, printed by every benchmark."""
    import torch

    cpu = f"{platform.processor() or platform.machine()}, {mp.cpu_count()} CPU cores"
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)} ({cpu}), torch {torch.__version__}"
    return f"CPU only: {cpu}, torch {torch.__version__}"


def measure(step: Callable[[], None], *, device: str, warmup: int, repeats: int) -> tuple[float, float]:
    """(best time of `repeats` calls in seconds, peak memory in MiB).

    CUDA: wall time and peak allocated memory after the warm-up. CPU: the process's CPU time (all its
    threads), which other jobs on a shared machine do not inflate as they do wall time, and its peak
    resident set size, weights included."""
    import torch

    cuda = device.startswith("cuda")

    clock = time.perf_counter if cuda else time.process_time

    def timed() -> float:
        start = clock()
        step()
        if cuda:
            torch.cuda.synchronize()
        return clock() - start

    for _ in range(warmup):
        timed()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    best = min(timed() for _ in range(repeats))
    if cuda:
        return best, torch.cuda.max_memory_allocated() / 2**20
    return best, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def run_isolated(target: Callable, *args):
    """Run `target(*args, queue)` in a fresh process (its own peak memory) and return what it puts."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result
