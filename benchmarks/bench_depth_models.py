"""Per-frame time and peak memory of the Buffer Anytime video depth model against its image prior
(Depth Anything V2) and Video Depth Anything, measured in the same run on the same machine.

The baseline is the image model run on the same T frames as one batch: what the video model adds
on top of it is the cost of its temporal blocks (target: at most 15% more time per frame). The
image model frame by frame (how the pipeline runs image models) is printed as well.

Times: the variants take turns in one process, best of --repeats rounds (CUDA: wall time; CPU:
process CPU time, which other jobs on a shared machine inflate less than wall time). Peak memory:
each variant in its own process (CUDA: peak allocated; CPU: peak resident set size, weights
included). FLOPs per frame are counted too: they do not depend on the machine.

    python benchmarks/bench_depth_models.py                      # CPU: small input, says so
    python benchmarks/bench_depth_models.py --device cuda        # 32 frames at 518x924 (16:9 plate)
"""

from __future__ import annotations

import argparse

from harness import add_json_option, machine, measure, run_isolated, table, write_json

VARIANTS = ("image-batched", "image-per-frame", "buffer-anytime", "video-depth-anything")


def _step(variant: str, args: argparse.Namespace):
    """Build the variant's model (deterministic random weights) and return one timed step over the window."""
    import torch

    from bufferany_core.models.depth import build_depth_model
    from bufferany_core.models.temporal import zero_initialised_prefixes
    from bufferany_core.models.weights import deterministic_state_dict

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = {
        "image-batched": f"depth-anything-v2-{args.size}",
        "image-per-frame": f"depth-anything-v2-{args.size}",
        "buffer-anytime": f"buffer-anytime-depth-{args.size}",
        "video-depth-anything": f"video-depth-anything-{args.size}",
    }[variant]
    model = build_depth_model(name)
    model.load_state_dict(deterministic_state_dict(model, skip_prefixes=zero_initialised_prefixes(model)))
    model = model.eval().requires_grad_(False).to(device)
    x = torch.randn(1, args.frames, 3, args.height, args.width, device=device)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.precision)

    def step() -> None:
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            if variant == "image-batched":
                model(x[0])
            elif variant == "image-per-frame":
                for frame in x[0]:
                    model(frame.unsqueeze(0))
            else:
                model(x)

    return step


def _memory_and_flops(variant: str, args: argparse.Namespace, queue) -> None:
    """In a fresh process: the variant's peak memory and its FLOPs per frame."""
    from torch.utils.flop_counter import FlopCounterMode

    step = _step(variant, args)
    _, peak = measure(step, device=args.device, warmup=args.warmup, repeats=1)
    with FlopCounterMode(display=False) as counter:  # machine-independent: what the time should follow
        step()
    queue.put((peak, counter.get_total_flops() / args.frames))


def _interleaved_times(variants: list[str], args: argparse.Namespace) -> dict[str, float]:
    """Best time per frame of each variant, the variants taking turns so that a busy machine's
    changing load falls on all of them alike."""
    steps = {variant: _step(variant, args) for variant in variants}
    best = dict.fromkeys(variants, float("inf"))
    for round_index in range(args.repeats):
        for variant, step in steps.items():
            warmup = args.warmup if round_index == 0 else 0
            seconds, _ = measure(step, device=args.device, warmup=warmup, repeats=1)
            best[variant] = min(best[variant], seconds / args.frames)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", default=None, help="tiny, small, base or large (CPU default: small)")
    parser.add_argument("--frames", type=int, default=None, help="window length (CUDA 32, CPU 8)")
    parser.add_argument("--height", type=int, default=None, help="model input height, multiple of 14")
    parser.add_argument("--width", type=int, default=None, help="model input width, multiple of 14")
    parser.add_argument("--precision", choices=("fp32", "fp16", "bf16"), default="fp32")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--threads", type=int, default=1, help="CPU threads per process (1: CPU time counts work, not waits)"
    )
    add_json_option(parser)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.size = args.size or "small"
    args.frames = args.frames or (32 if cuda else 8)
    args.height = args.height or (518 if cuda else 140)
    args.width = args.width or (924 if cuda else 252)
    if args.height % 14 or args.width % 14:
        parser.error("--height and --width must be multiples of 14")

    setup = f"{args.size}, window of {args.frames} frames at {args.height}x{args.width}, {args.precision}"
    print(f"machine: {machine(args.device)}")
    print(f"models: {setup}")
    if not cuda:
        print("note: CPU run at a reduced input size (the models run at 518 px and up on a GPU)")
    variants = [v for v in VARIANTS if v != "video-depth-anything" or args.size in ("small", "tiny")]
    # Memory first: a process started later would report this one's peak (Linux keeps it across exec).
    memory_and_flops = {variant: run_isolated(_memory_and_flops, variant, args) for variant in variants}
    times = _interleaved_times(variants, args)
    results = {variant: (times[variant], *memory_and_flops[variant]) for variant in variants}

    base_time, base_mem, base_flops = results["image-batched"]
    print(
        f"{'variant':<22}{'ms/frame':>10}{'x time':>9}{'peak MiB':>10}{'x mem':>8}{'GFLOP/frame':>13}{'x FLOP':>8}"
    )
    for variant, (per_frame, peak, flops) in results.items():
        print(
            f"{variant:<22}{per_frame * 1e3:>10.2f}{per_frame / base_time:>9.3f}{peak:>10.0f}{peak / base_mem:>8.3f}"
            f"{flops / 1e9:>13.2f}{flops / base_flops:>8.3f}"
        )
    time_overhead = results["buffer-anytime"][0] / base_time - 1
    flop_overhead = results["buffer-anytime"][2] / base_flops - 1
    verdict = "within" if time_overhead <= 0.15 else "ABOVE"
    print(
        f"temporal blocks: {time_overhead:+.1%} time per frame ({verdict} the 15% target), "
        f"{flop_overhead:+.1%} FLOPs per frame, over the image model"
    )
    write_json(
        args.json,
        machine=machine(args.device),
        tables=[
            table(
                title="Depth models: video vs image",
                setup=setup + ("" if cuda else f", {args.threads} CPU thread(s), CPU time"),
                baseline="image-batched",
                metrics={
                    "ms_per_frame": "ms/frame",
                    "peak_mib": "peak MiB",
                    "gflop_per_frame": "GFLOP/frame",
                },
                rows={
                    variant: {"ms_per_frame": t * 1e3, "peak_mib": m, "gflop_per_frame": f / 1e9}
                    for variant, (t, m, f) in results.items()
                },
                notes=[f"temporal blocks: {time_overhead:+.1%} time per frame ({verdict} the 15% target)"],
            )
        ],
    )


if __name__ == "__main__":
    main()
