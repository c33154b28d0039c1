"""Per-frame time and peak memory of the Buffer Anytime normal video model against its image prior
(Marigold-E2E-FT), measured in the same run on the same machine, through `load_normal_predictor`
(resize, VAE encode, one UNet step, chunked VAE decode, upsampling) with deterministic random weights.

The baseline is the image model on the same frames (UNet and decoder in chunks of `--decode-chunk`
frames, as the predictor runs it); the video model sees them as one window. Each variant runs in its
own process so that its peak memory is its own (CUDA: peak allocated; CPU: peak resident set size,
weights included).

    python benchmarks/bench_normal_models.py                    # CPU: tiny config, small frames
    python benchmarks/bench_normal_models.py --device cuda      # SD2 size, 32 frames of 1080p -> 768 px
"""

from __future__ import annotations

import argparse

from harness import add_json_option, machine, measure, run_isolated, table, write_json

VARIANTS = {"image": "marigold-e2e-ft-normals", "video": "buffer-anytime-normal"}


def _run_variant(variant: str, args: argparse.Namespace, queue) -> None:
    import torch

    from bufferany_core.models.normal import load_normal_predictor
    from bufferany_core.models.weights import RandomWeights

    torch.set_num_threads(args.threads)
    name = VARIANTS[variant] + ("-tiny" if args.size == "tiny" else "")
    predictor = load_normal_predictor(
        name,
        weights=RandomWeights(0),
        device=args.device,
        processing_size=args.processing_size,
        decode_chunk=args.decode_chunk,
    )
    frames = torch.rand(args.frames, 3, args.height, args.width, device=predictor.device)
    seconds, peak = measure(
        lambda: predictor.predict(frames), device=args.device, warmup=args.warmup, repeats=args.repeats
    )
    queue.put((seconds / args.frames, peak))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--size", choices=("tiny", "sd2"), default=None, help="CPU default tiny, CUDA sd2")
    parser.add_argument("--frames", type=int, default=None, help="window length (CUDA 32, CPU 8)")
    parser.add_argument("--height", type=int, default=None, help="plate height (CUDA 1080, CPU 96)")
    parser.add_argument("--width", type=int, default=None, help="plate width (CUDA 1920, CPU 160)")
    parser.add_argument("--processing-size", type=int, default=None, help="longest edge (CUDA 768, CPU 128)")
    parser.add_argument("--decode-chunk", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads per process")
    add_json_option(parser)
    args = parser.parse_args()
    cuda = args.device.startswith("cuda")
    args.size = args.size or ("sd2" if cuda else "tiny")
    args.frames = args.frames or (32 if cuda else 8)
    args.height = args.height or (1080 if cuda else 96)
    args.width = args.width or (1920 if cuda else 160)
    args.processing_size = (
        args.processing_size if args.processing_size is not None else (768 if cuda else 128)
    )

    setup = (
        f"{args.size} (random weights, fp32), window of {args.frames} frames of "
        f"{args.height}x{args.width}, processed at longest edge {args.processing_size}, decode chunk {args.decode_chunk}"
    )
    print(f"machine: {machine(args.device)}")
    print(f"models: {setup}")
    results = {variant: run_isolated(_run_variant, variant, args) for variant in VARIANTS}

    base_time, base_mem = results["image"]
    clock = "ms/frame" if cuda else "CPU ms/fr"
    print(f"{'variant':<10}{clock:>10}{'x time':>9}{'peak MiB':>10}{'x mem':>8}")
    for variant, (per_frame, peak) in results.items():
        print(
            f"{variant:<10}{per_frame * 1e3:>10.2f}{per_frame / base_time:>9.3f}{peak:>10.0f}{peak / base_mem:>8.3f}"
        )
    write_json(
        args.json,
        machine=machine(args.device),
        tables=[
            table(
                title="Normal models: video vs image",
                setup=setup,
                baseline="image",
                metrics={"ms_per_frame": clock, "peak_mib": "peak MiB"},
                rows={v: {"ms_per_frame": t * 1e3, "peak_mib": m} for v, (t, m) in results.items()},
            )
        ],
    )


if __name__ == "__main__":
    main()
