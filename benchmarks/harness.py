"""Shared benchmark helpers: the machine line, timing with peak memory, one process per variant,
and the JSON each benchmark writes for benchmarks/report.py."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path


def machine(device: str) -> str:
    """One line naming the hardware and torch version, printed by every benchmark."""
    import torch

    cpu = f"{cpu_model()}, {mp.cpu_count()} CPU cores"
    if device.startswith("cuda"):
        return f"{torch.cuda.get_device_name(0)} ({cpu}), torch {torch.__version__}"
    return f"CPU only: {cpu}, torch {torch.__version__}"


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


def add_json_option(parser) -> None:
    """`--json PATH`: the benchmark also writes its figures for benchmarks/report.py."""
    parser.add_argument(
        "--json", type=Path, default=None, metavar="PATH", help="also write the measured figures as JSON here"
    )


def table(
    *,
    title: str,
    setup: str,
    baseline: str,
    metrics: dict[str, str],
    rows: dict[str, dict[str, float | None]],
    notes: list[str] | tuple[str, ...] = (),
    series: dict | None = None,
    headline: str | None = None,
) -> dict:
    """One table of raw figures for the report.

    `metrics` maps each figure's key to its label with the unit; `rows` maps each variant to its
    figures (None where a variant has none). The report divides every row by the `baseline` row,
    so ratios always come from one run. `series`: per-frame curves or other lists for plots.
    `headline`: the figure the report's summary quotes (default: the first)."""
    if baseline not in rows:
        raise ValueError(f"baseline {baseline!r} is not one of the rows {sorted(rows)}")
    unknown = sorted({key for figures in rows.values() for key in figures} - set(metrics))
    if unknown:
        raise ValueError(f"rows carry figures without a label in `metrics`: {unknown}")
    headline = headline or next(iter(metrics))
    if headline not in metrics:
        raise ValueError(f"headline {headline!r} is not one of the metrics {sorted(metrics)}")
    return {
        "title": title,
        "setup": setup,
        "baseline": baseline,
        "metrics": metrics,
        "rows": rows,
        "notes": list(notes),
        "series": series or {},
        "headline": headline,
    }


def write_json(
    path: Path | None, *, machine: str, tables: list[dict], files: dict[str, str] | None = None
) -> None:
    """Write a benchmark's tables (`table`) and the machine they ran on; nothing when `path` is None.
    `files`: images the benchmark wrote beside `path` (file name -> caption), for the report to show."""
    if path is None:
        return
    payload = _finite({"machine": machine, "tables": tables, "files": files or {}})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload, indent=1, allow_nan=False))
    temporary.replace(path)


def _finite(value):
    """JSON has no NaN or infinity: a figure that is not finite becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def ratios(table: dict) -> dict[str, dict[str, float | None]]:
    """Every row's figures of a `table` divided by its baseline row's (None where either is missing
    or the baseline is 0): what the benchmarks print and the report shows."""
    base = table["rows"][table["baseline"]]
    return {
        name: {
            key: value / base[key] if value is not None and base.get(key) else None
            for key, value in figures.items()
        }
        for name, figures in table["rows"].items()
    }


def print_table(table: dict) -> None:
    """Print a `table`: each figure and its ratio to the baseline row."""
    metrics, relative = table["metrics"], ratios(table)
    width = max(len(name) for name in table["rows"]) + 2
    columns = {key: max(len(label) + 2, 12) for key, label in metrics.items()}
    print(f"{'':<{width}}" + "".join(f"{label:>{columns[key]}}{'x':>7}" for key, label in metrics.items()))
    for name, figures in table["rows"].items():
        cells = ""
        for key, column in columns.items():
            value, ratio = figures.get(key), relative[name].get(key)
            cells += f"{value:>{column}.4g}" if value is not None else f"{'-':>{column}}"
            cells += f"{ratio:>7.2f}" if ratio is not None else f"{'-':>7}"
        print(f"{name:<{width}}{cells}")
