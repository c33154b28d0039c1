"""The Buffer Anytime depth model's cost at its real size: time per frame against its image prior
(Depth Anything V2) at the Small size and 518 px, and the peak memory of a 32-frame window at
518x924 for Small and Large, with the window a 24 GB GPU holds.

Time: the variants `image-batched` (baseline: the prior on the window's frames as one batch) and
`buffer-anytime` of benchmarks/bench_depth_models.py, deterministic random weights, taking turns in
one process, best of --repeats (CPU: process CPU time; CUDA: wall time). Goal: at most 1.10x, the
temporal blocks adding about 4% FLOPs (counted too).

Memory, inference without gradient, each (size, window) in a fresh process: the window's peak over
what the process held before the forward (the model and its input), i.e. activations and
workspaces, plus the weights. CUDA: torch's peak allocated memory of a 32-frame window, fp32 and
fp16 (autocast). CPU: the resident set's high-water mark, reset before the forward
(/proc/self/clear_refs, after malloc_trim), at short windows (--memory-frames) and extrapolated linearly to 32 frames
(every activation scales with the window's frame count: the frames are the ViT's batch); fp16 is
then estimated as half the fp32 activations. What fits a 24 GB GPU is an estimate: weights +
frames x activation per frame + 1 GiB for the CUDA context and allocator slack.

    python benchmarks/bench_model_cost.py                    # CPU: Small at 518x924, 8-frame windows
    python benchmarks/bench_model_cost.py --device cuda      # the same on a GPU, memory measured at 32 frames
"""

from __future__ import annotations

import argparse
import ctypes
import re
from pathlib import Path

from bench_depth_models import _interleaved_times, _step
from harness import add_json_option, machine, run_isolated, table, write_json

GOAL = 1.10
WINDOW = 32  # the depth models' window (models.catalog)
GPU_BYTES = 24 * 10**9  # "24 GB" as cards are sold
CONTEXT_BYTES = 2**30  # CUDA context and allocator slack, outside torch's allocated figure
SIZES = {"small": "vits", "large": "vitl"}


def _settings(args: argparse.Namespace, *, size: str, frames: int, precision: str) -> argparse.Namespace:
    """The namespace bench_depth_models' `_step` reads."""
    return argparse.Namespace(
        size=size,
        frames=frames,
        height=args.height,
        width=args.width,
        device=args.device,
        precision=precision,
        threads=args.threads,
        repeats=args.repeats,
        warmup=args.warmup,
    )


def _resident_high_water_mib() -> float:
    return int(re.search(r"VmHWM:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def _resident_mib() -> float:
    return int(re.search(r"VmRSS:\s+(\d+)", Path("/proc/self/status").read_text()).group(1)) / 1024


def _window_memory(settings: argparse.Namespace, queue) -> None:
    """In a fresh process: MiB the forward of one window needs above the model and its input."""
    import torch

    step = _step("buffer-anytime", settings)
    if settings.device.startswith("cuda"):
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        queue.put((torch.cuda.max_memory_allocated() - before) / 2**20)
        return
    # Hand the heap's free pages back first: building the weights freed about their size again, and
    # a forward reusing those resident pages would not raise the high-water mark.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = _resident_mib()
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    step()
    queue.put(_resident_high_water_mib() - before)


def _weights_mib(size: str) -> float:
    """float32 weights of the Buffer Anytime depth model (built on the meta device: nothing allocated)."""
    import torch

    from bufferany_core.models.depth import build_depth_model

    with torch.device("meta"):
        model = build_depth_model(f"buffer-anytime-depth-{size}")
    return sum(p.numel() * 4 for p in model.parameters()) / 2**20


def _flops_per_frame(variant: str, settings: argparse.Namespace) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        _step(variant, settings)()
    return counter.get_total_flops() / settings.frames


def _gpu_frames(weights_mib: float, activation_mib_per_frame: float) -> int:
    free = (GPU_BYTES - CONTEXT_BYTES) / 2**20 - weights_mib
    return max(0, int(free // activation_mib_per_frame))


def _memory_rows(args: argparse.Namespace, cuda: bool) -> tuple[dict, list[str]]:
    """Per size: weights, activations of a 32-frame window (fp32, fp16) and the window 24 GB hold."""
    rows, notes = {}, []
    for size in args.memory_sizes:
        weights = _weights_mib(size)
        if cuda:
            fp32, fp16 = (
                run_isolated(_window_memory, _settings(args, size=size, frames=WINDOW, precision=p))
                for p in ("fp32", "fp16")
            )
            how = f"measured at {WINDOW} frames"
        else:
            short = {
                frames: run_isolated(
                    _window_memory, _settings(args, size=size, frames=frames, precision="fp32")
                )
                for frames in args.memory_frames
            }
            (t0, m0), (t1, m1) = sorted(short.items())[0], sorted(short.items())[-1]
            per_frame = (m1 - m0) / (t1 - t0)
            fp32 = m1 + per_frame * (WINDOW - t1)
            fp16 = fp32 / 2
            how = (
                f"CPU resident peak at {', '.join(f'{t} frames {m:.0f} MiB' for t, m in short.items())}, "
                f"extrapolated to {WINDOW} ({per_frame:.0f} MiB/frame); fp16 assumed half the fp32 "
                "activations plus half-float copies of the weights"
            )
        # fp16 under autocast: half-float activations, plus the half copies of the weights that
        # autocast caches for the forward (measured on CUDA; added to the CPU estimate).
        for precision, window, copies in (("fp32", fp32, 0.0), ("fp16", fp16, 0.0 if cuda else weights / 2)):
            window += copies
            per_frame = (window - copies) / WINDOW
            rows[f"{size} {precision}"] = {
                "weights_mib": weights,
                "window_mib": window,
                "total_gib": (weights + window) / 1024,
                "frames_in_24gb": _gpu_frames(weights + copies, per_frame),
            }
        notes.append(f"{size}: {how}")
    return rows, notes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--frames", type=int, default=None, help="window of the timing (CPU 8, CUDA 32)")
    parser.add_argument("--height", type=int, default=518, help="model input height, multiple of 14")
    parser.add_argument("--width", type=int, default=924, help="model input width, multiple of 14")
    parser.add_argument("--time-size", default="small", help="model size timed (tiny for a quick check)")
    parser.add_argument(
        "--memory-sizes", nargs="*", default=list(SIZES), help="sizes whose memory is measured"
    )
    parser.add_argument(
        "--memory-frames",
        type=int,
        nargs=2,
        default=(1, 2),
        help="CPU: the two short windows extrapolated to 32",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1: CPU time counts work, not waits)"
    )
    add_json_option(parser)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.frames = args.frames or (WINDOW if cuda else 8)
    if args.height % 14 or args.width % 14:
        parser.error("--height and --width must be multiples of 14")

    print(f"machine: {machine(args.device)}")
    print(f"timing: {args.time_size}, window of {args.frames} frames at {args.height}x{args.width}, fp32")
    memory, memory_notes = _memory_rows(args, cuda)
    timing = _settings(args, size=args.time_size, frames=args.frames, precision="fp32")
    flops = {variant: _flops_per_frame(variant, timing) for variant in ("image-batched", "buffer-anytime")}
    times = _interleaved_times(list(flops), timing)
    ratio = times["buffer-anytime"] / times["image-batched"]
    verdict = "within" if ratio <= GOAL else "ABOVE"
    summary = (
        f"Buffer Anytime / image prior: {ratio:.3f}x time per frame ({verdict} the {GOAL:.2f}x goal), "
        f"{flops['buffer-anytime'] / flops['image-batched']:.3f}x FLOPs"
    )
    print(summary)
    for name, row in memory.items():
        print(
            f"{name:<12} weights {row['weights_mib']:7.0f} MiB, {WINDOW}-frame window {row['window_mib']:7.0f} MiB, "
            f"total {row['total_gib']:5.1f} GiB, window in 24 GB ~{row['frames_in_24gb']} frames"
        )
    for note in memory_notes:
        print(f"  {note}")
    clock = "wall time" if cuda else f"{args.threads} CPU thread(s), CPU time"
    tables = [
        table(
            title="Depth model cost: Buffer Anytime vs its image prior",
            setup=(
                f"{args.time_size}, window of {args.frames} frames at {args.height}x{args.width}, fp32, "
                f"random weights, {clock}, best of {args.repeats}"
            ),
            baseline="image-batched",
            metrics={"ms_per_frame": "ms/frame", "gflop_per_frame": "GFLOP/frame"},
            rows={
                variant: {"ms_per_frame": times[variant] * 1e3, "gflop_per_frame": flops[variant] / 1e9}
                for variant in flops
            },
            notes=[summary],
        )
    ]
    if memory:
        tables.append(
            table(
                title=f"Depth model memory: {WINDOW}-frame window at {args.height}x{args.width}",
                setup=(
                    "Buffer Anytime depth, inference without gradient; "
                    + (
                        "torch peak allocated on the GPU"
                        if cuda
                        else "ESTIMATE for a GPU from CPU measurements"
                    )
                    + "; frames in 24 GB = (24e9 B - 1 GiB context - weights) / window MiB per frame"
                ),
                baseline=f"{args.memory_sizes[0]} fp32",
                metrics={
                    "weights_mib": "weights MiB",
                    "window_mib": "window MiB",
                    "total_gib": "total GiB",
                    "frames_in_24gb": "frames in 24 GB",
                },
                rows=memory,
                headline="total_gib",
                notes=memory_notes,
            )
        )
    write_json(args.json, machine=machine(args.device), tables=tables)


if __name__ == "__main__":
    main()
