"""Peak memory and speed of `run_render` for a short and a ten-times-longer shot.

    .venv/bin/python benchmarks/bench_pipeline_memory.py [--passes depth] [--short 30] [--long 300]
    .venv/bin/python benchmarks/bench_pipeline_memory.py --schedules farm,official   # docs/schedules.md

Each shot renders in a fresh process (tiny random-weight models, small frames) that reports its own
peak resident memory; the figure to read is the long/short ratio: frames stream through windows, so
memory must not grow with the shot's length (ratio about 1.0). Frames per second are end to end
(reading, models, alignment, writing EXRs) and machine-dependent: compare them within one run.
With `--schedules`, each depth schedule (`--schedule farm|official`) renders both shots with the
models' own windows (32 slots, as the official schedule requires) and the table lists time and peak
memory of each.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from harness import add_json_option, cpu_model, table, write_json

from bufferany_core.frames import write_exr

CHILD = """
import json, resource, sys, time
from bufferany_core.jobs import RenderJob
from bufferany_core.pipeline.render import run_render
spec = json.loads(sys.argv[1])
start = time.perf_counter()
result = run_render(RenderJob(**spec))
seconds = time.perf_counter() - start
print(json.dumps({"frames": len(result.frames_written), "seconds": seconds,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def write_shot(folder: Path, count: int, size: tuple[int, int]) -> str:
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    for n in range(1, count + 1):
        shift = 0.02 * n
        write_exr(folder / f"shot.{n:04d}.exr", {"R": (x / width + shift) % 1, "G": y / height, "B": np.full_like(x, 0.4)})
    return str(folder / "shot.####.exr")


def measure(plate: str, out: Path, args: argparse.Namespace, schedule: str | None = None) -> dict:
    spec = {
        "input": plate,
        "output": str(out / "shot_buffers.####.exr"),
        "passes": args.passes.split(","),
        "depth_model": "video-depth-anything-tiny",
        "normal_model": "buffer-anytime-normal-tiny",
        "weights": "random",
        "device": "cpu",
        "window": args.window,
        "overlap": args.overlap,
        "depth_processing_size": args.processing_size,
        "normal_processing_size": args.processing_size,
    }
    if schedule is not None:  # the models' own windows: the official schedule has its own
        spec.update(schedule=schedule, window=None, overlap=None)
    run = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], capture_output=True, text=True, check=True)
    return json.loads(run.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--passes", default="depth")
    parser.add_argument("--short", type=int, default=30)
    parser.add_argument("--long", type=int, default=300)
    parser.add_argument("--size", type=int, nargs=2, default=(128, 72), metavar=("W", "H"))
    parser.add_argument("--window", type=int, default=16)
    parser.add_argument("--overlap", type=int, default=4)
    parser.add_argument("--processing-size", type=int, default=56)
    parser.add_argument("--schedules", default=None, help="comma-separated depth schedules to compare (farm,official)")
    add_json_option(parser)
    args = parser.parse_args()
    if args.schedules:
        compare_schedules(args)
        return
    where = f"{cpu_model()}, {os.cpu_count()} CPU(s), {platform.platform()}, python {platform.python_version()}"
    setup = (f"{args.size[0]}x{args.size[1]} EXR, passes {args.passes}, window {args.window}/{args.overlap}, "
             f"processing size {args.processing_size}, tiny random-weight models on the CPU")
    print(f"machine: {where}")
    print(f"shot: {setup}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in (args.short, args.long):
            folder = Path(tmp) / str(count)
            folder.mkdir()
            plate = write_shot(folder, count, tuple(args.size))
            results[count] = measure(plate, folder / "out", args)
            r = results[count]
            print(f"{count:4d} frames: peak RSS {r['peak_rss_mib']:.1f} MiB, {r['seconds']:.1f} s, "
                  f"{r['frames'] / r['seconds']:.2f} frames/s")
    short, long = results[args.short], results[args.long]
    print(f"peak RSS ratio {args.long}/{args.short} frames: {long['peak_rss_mib'] / short['peak_rss_mib']:.3f} "
          f"(1.000 = independent of shot length)")
    print(f"speed ratio {args.long}/{args.short} frames: "
          f"{(long['frames'] / long['seconds']) / (short['frames'] / short['seconds']):.2f} "
          f"(start-up cost amortised over the longer shot)")
    write_json(
        args.json,
        machine=where,
        tables=[table(
            title=f"Pipeline memory: {args.short} vs {args.long} frames",
            setup=setup,
            baseline=f"{args.short} frames",
            metrics={"peak_rss_mib": "peak RSS MiB", "frames_per_second": "frames/s (wall, end to end)"},
            rows={f"{count} frames": {"peak_rss_mib": r["peak_rss_mib"], "frames_per_second": r["frames"] / r["seconds"]}
                  for count, r in results.items()},
            notes=["peak RSS ratio about 1.0: memory does not grow with the shot's length"],
        )],
    )


def compare_schedules(args: argparse.Namespace) -> None:
    """Time and peak RSS of each depth schedule on the short and the long shot (fresh process each)."""
    schedules = args.schedules.split(",")
    print(f"machine: {cpu_model()}, {os.cpu_count()} CPU(s); {args.size[0]}x{args.size[1]} EXR, depth, "
          f"processing size {args.processing_size}, video-depth-anything-tiny (random weights), the models' windows")
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        for count in (args.short, args.long):
            folder = Path(tmp) / str(count)
            folder.mkdir()
            plate = write_shot(folder, count, tuple(args.size))
            for schedule in schedules:
                rows[schedule, count] = measure(plate, folder / schedule, args, schedule=schedule)
    print("| schedule | frames | seconds | frames/s | peak RSS MiB |")
    print("|---|---|---|---|---|")
    for (schedule, count), r in rows.items():
        print(f"| {schedule} | {count} | {r['seconds']:.1f} | {r['frames'] / r['seconds']:.2f} | {r['peak_rss_mib']:.0f} |")


if __name__ == "__main__":
    main()
