"""Farm chunks against one run, and what the stabiliser adds to a render.

The Blender sample shot (examples/sample_shot) renders through `run_render` (tiny random-weight
depth and normal video models, models loaded once and kept between jobs) as one run and as three
farm chunks (`frames` a third of the shot each, `shot_range` the whole shot), with and without
the stabiliser. Agreement: the largest difference between the chunks' frames and the one run's,
as a percentage of the one run's range (depth.Z; normals: of their range of 2). Time: the process's
CPU time of each render on one thread (which other jobs on a shared machine inflate less than wall
time), the unstabilised one run being the baseline.

    .venv/bin/python benchmarks/bench_chunks.py [--frames 24] [--processing-size 84]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from harness import add_json_option, machine, print_table, table, write_json

from bufferany_core.conventions import DEPTH_CHANNEL, NORMAL_CHANNELS
from bufferany_core.frames import FrameSequence, format_frame_spec, read_channels
from bufferany_core.jobs import RenderJob
from bufferany_core.pipeline.render import PredictorCache, run_render

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PLATE = REPO / "examples" / "sample_shot" / "plate" / "shot.####.exr"


def render(job: dict, out: Path, predictors: PredictorCache, *, frames: str | None = None) -> float:
    start = time.process_time()
    run_render(RenderJob(**job, output=str(out / "buffers.####.exr"), frames=frames), predictors=predictors)
    return time.process_time() - start


def read_passes(folder: Path, frames: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """(depth (T, H, W), normals (T, H, W, 3)) of a render."""
    names = [DEPTH_CHANNEL, *NORMAL_CHANNELS]
    stack = np.stack([read_channels(folder / f"buffers.{n:04d}.exr", names) for n in frames])
    return stack[..., 0], stack[..., 1:]


def chunks_of(frames: list[int], count: int) -> list[str]:
    return [format_frame_spec(part.tolist()) for part in np.array_split(np.array(frames), count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=40, help="first N frames of the sample shot")
    parser.add_argument("--chunks", type=int, default=3)
    parser.add_argument("--processing-size", type=int, default=84)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch and OpenCV)")
    add_json_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    sequence = FrameSequence.from_input(SAMPLE_PLATE)  # names the missing shot when it is absent
    frames = sequence.frames[: args.frames]
    shot_range = format_frame_spec(frames)
    job = {
        "input": str(SAMPLE_PLATE),
        "shot_range": shot_range,
        "passes": ("depth", "normal"),
        "depth_model": "video-depth-anything-tiny",
        "normal_model": "buffer-anytime-normal-tiny",
        "weights": "random",
        "device": "cpu",
        "overwrite": True,
        "depth_processing_size": args.processing_size,
        "normal_processing_size": args.processing_size,
    }
    where = machine("cpu")
    setup = (
        f"sample shot frames {shot_range} ({len(frames)} frames), {args.chunks} chunks, tiny random-weight "
        f"depth + normal models at processing size {args.processing_size}, CPU time on {args.threads} thread(s)"
    )
    print(f"machine: {where}")
    print(f"render: {setup}")
    predictors = PredictorCache()
    rows: dict[str, dict[str, float | None]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-chunks-") as tmp:
        tmp = Path(tmp)
        render(job, tmp / "warmup", predictors, frames=format_frame_spec(frames[:2]))  # loads the models
        for stabilize in (False, True):
            variant = {**job, "stabilize": stabilize}
            label = ", stabilised" if stabilize else ""
            whole, chunked = tmp / f"whole{label}", tmp / f"chunked{label}"
            seconds_whole = render(variant, whole, predictors)
            seconds_chunks = sum(
                render(variant, chunked, predictors, frames=spec) for spec in chunks_of(frames, args.chunks)
            )
            depth_a, normal_a = read_passes(whole, frames)
            depth_b, normal_b = read_passes(chunked, frames)
            depth_range = float(depth_a.max() - depth_a.min())
            rows[f"one run{label}"] = {
                "seconds": seconds_whole,
                "depth_diff_pct": None,
                "normal_diff_pct": None,
            }
            rows[f"{args.chunks} chunks{label}"] = {
                "seconds": seconds_chunks,
                "depth_diff_pct": 100 * float(np.abs(depth_b - depth_a).max()) / depth_range,
                "normal_diff_pct": 100 * float(np.abs(normal_b - normal_a).max()) / 2.0,
            }
    figures = table(
        title="Farm chunks and stabiliser overhead (pipeline)",
        setup=setup,
        baseline="one run",
        metrics={
            "seconds": "CPU seconds",
            "depth_diff_pct": "max depth diff, % of range",
            "normal_diff_pct": "max normal diff, % of range",
        },
        rows=rows,
        notes=[
            "chunk rows: difference to the one run with the same stabiliser setting (0 = identical)",
            "time of a stabilised row over the unstabilised one run: the stabiliser's cost in a render",
        ],
        headline="depth_diff_pct",
    )
    print_table(figures)
    write_json(args.json, machine=where, tables=[figures])


if __name__ == "__main__":
    main()
