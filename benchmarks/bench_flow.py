"""Time per frame pair and peak memory of the flow backends: OpenCV DIS (the baseline, what runs
when no RAFT weights are installed) against torchvision's RAFT small and large with deterministic
random weights (a network's cost does not depend on its weights).

Pairs are consecutive frames of the procedural shot (bufferany_core.testing.procedural_shot). Each
backend runs in its own process, so its peak memory is its own (CUDA: peak allocated; CPU: peak
resident set size). CPU times are process CPU time, which other jobs inflate less than wall time.

    .venv/bin/python benchmarks/bench_flow.py [--pairs 4] [--width 320 --height 176] [--device cuda]
"""

from __future__ import annotations

import argparse

from harness import add_json_option, machine, measure, print_table, run_isolated, table, write_json

BACKENDS = ("dis", "raft-small", "raft-large")


def _run_backend(name: str, args: argparse.Namespace, queue) -> None:
    import cv2
    import torch

    from bufferany_core.flow import load_flow_estimator
    from bufferany_core.models.weights import RandomWeights
    from bufferany_core.testing.procedural_shot import procedural_shot

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    shot = procedural_shot(frames=args.pairs + 1, height=args.height, width=args.width)
    frames = torch.from_numpy(shot.plate).to(args.device)  # (pairs + 1, 3, H, W)
    estimator = load_flow_estimator(
        name, weights=None if name == "dis" else RandomWeights(0), device=args.device
    )
    seconds, peak = measure(
        lambda: estimator.estimate_flow(frames[:-1], frames[1:]),
        device=args.device,
        warmup=args.warmup,
        repeats=args.repeats,
    )
    queue.put((seconds / args.pairs, peak))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pairs", type=int, default=4, help="frame pairs per call (one batch)")
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=176)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per process (torch and OpenCV)")
    add_json_option(parser)
    args = parser.parse_args()

    where = machine(args.device)
    setup = (
        f"{args.pairs} pairs of {args.width}x{args.height} per call, RAFT with 12 flow updates and random "
        f"weights, {args.threads} CPU thread(s), best of {args.repeats}"
    )
    print(f"machine: {where}")
    print(f"flow: {setup}")
    results = {name: run_isolated(_run_backend, name, args) for name in BACKENDS}
    figures = table(
        title="Flow backends",
        setup=setup,
        baseline="dis",
        metrics={"ms_per_pair": "ms/pair", "peak_mib": "peak MiB"},
        rows={name: {"ms_per_pair": t * 1e3, "peak_mib": m} for name, (t, m) in results.items()},
    )
    print_table(figures)
    write_json(args.json, machine=where, tables=[figures])


if __name__ == "__main__":
    main()
