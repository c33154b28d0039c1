"""What going through `bufferany-server` costs over calling the pipeline in-process.

The same job (tiny depth model, random weights, a small EXR plate made here) runs `--repeats` times
with models already loaded on both sides: in this process with `run_render` and a warm
PredictorCache, then through a real `bufferany-server` subprocess on loopback with the standard
library client (submit, stream every event, wait). Also the round trip of a `status` request.

    .venv/bin/python benchmarks/bench_service_overhead.py [--frames 12] [--repeats 5] [--device auto]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from harness import add_json_option, machine, table, write_json

from bufferany_core.client import Client
from bufferany_core.frames import write_exr
from bufferany_core.jobs import RenderJob
from bufferany_core.pipeline.render import PredictorCache, run_render


def make_plate(folder: Path, frames: int, width: int, height: int) -> str:
    rng = np.random.default_rng(0)
    base = rng.random((height, width, 3), dtype=np.float32)
    for n in range(1, frames + 1):
        pixels = np.roll(base, n, axis=1)  # a pan, so windows differ
        write_exr(
            folder / f"plate.{n:04d}.exr",
            {c: pixels[..., i] for i, c in enumerate("RGB")},
            half=["R", "G", "B"],
        )
    return str(folder / "plate.####.exr")


def start_server(folder: Path, device: str, threads: int | None) -> subprocess.Popen:
    command = [
        str(Path(sys.executable).with_name("bufferany-server")),
        "--port",
        "0",
        "--device",
        device,
        "--discovery",
        str(folder / "server.json"),
        "--log-level",
        "warning",
    ]
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {}))
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, env=env)


def wait_for_server(path: Path, timeout: float = 60.0) -> Client:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return Client.connect(path, timeout=30)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, nargs=2, default=(64, 48), metavar=("WIDTH", "HEIGHT"))
    parser.add_argument("--processing-size", type=int, default=56)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch on both sides (default: torch's)"
    )
    add_json_option(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        plate = make_plate(folder, args.frames, *args.size)
        job = dict(
            input=plate,
            passes=("depth",),
            depth_model="video-depth-anything-tiny",
            weights="random",
            device=args.device,
            overwrite=True,
            window=6,
            overlap=2,
            depth_processing_size=args.processing_size,
            normal_processing_size=args.processing_size,
        )

        cache = PredictorCache()
        server = start_server(folder, args.device, args.threads)
        try:
            with wait_for_server(folder / "server.json") as client:
                in_process, service, events, round_trips = [], [], [], []
                # Alternating runs, so both sides see the same machine load; run 0 loads the models.
                for i in range(args.repeats + 1):
                    start = time.perf_counter()
                    run_render(RenderJob(**job), predictors=cache)
                    middle = time.perf_counter()
                    seen = []
                    client.wait(client.submit(job), on_event=seen.append)
                    end = time.perf_counter()
                    if i:
                        in_process.append(middle - start)
                        service.append(end - middle)
                        events.append(len(seen))
                # A resumed job (every frame already written with these settings): no model work, so
                # what remains is the fixed cost of a job, each way.
                resumed = {**job, "overwrite": False}
                resumed_in_process, resumed_service = [], []
                for _ in range(20):
                    start = time.perf_counter()
                    run_render(RenderJob(**resumed), predictors=cache)
                    middle = time.perf_counter()
                    client.wait(client.submit(resumed))
                    resumed_in_process.append(middle - start)
                    resumed_service.append(time.perf_counter() - middle)
                for _ in range(200):
                    start = time.perf_counter()
                    client.status()
                    round_trips.append(time.perf_counter() - start)
                loads = client.status()["model_loads"]
                client.shutdown()
            server.wait(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()

    device = (
        torch.cuda.get_device_name()
        if torch.cuda.is_available() and args.device != "cpu"
        else platform.processor() or "cpu"
    )
    base, through = statistics.median(in_process), statistics.median(service)
    print(
        f"machine: {platform.node()} {platform.machine()}, {os.cpu_count()} CPU cores, device {device}, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, Python {platform.python_version()}"
    )
    print(
        f"job: {args.frames} frames {args.size[0]}x{args.size[1]}, video-depth-anything-tiny random weights, "
        f"processing size {args.processing_size}, median of {args.repeats} warm runs, alternating"
    )
    print(f"in-process run_render : median {base * 1000:9.1f} ms, best {min(in_process) * 1000:9.1f} ms")
    print(
        f"through the service   : median {through * 1000:9.1f} ms, best {min(service) * 1000:9.1f} ms "
        f"({statistics.median(events):.0f} events streamed, "
        f"model loads in the server: {loads})"
    )
    print(
        f"ratio service / in-process: median {through / base:.3f}, best {min(service) / min(in_process):.3f} "
        f"(overhead {1000 * (min(service) - min(in_process)):+.1f} ms per job, best vs best)"
    )
    skip_base, skip_through = statistics.median(resumed_in_process), statistics.median(resumed_service)
    print(
        f"resumed job (all frames skipped): in-process {skip_base * 1000:.1f} ms, service {skip_through * 1000:.1f} ms, "
        f"fixed overhead {1000 * (skip_through - skip_base):+.1f} ms (median of {len(resumed_service)})"
    )
    print(
        f"status round trip: median {1e6 * statistics.median(round_trips):.0f} us over {len(round_trips)} requests"
    )
    setup = (
        f"{args.frames} frames {args.size[0]}x{args.size[1]}, video-depth-anything-tiny random weights, "
        f"processing size {args.processing_size}, warm models, wall time, in-process and service runs alternating"
    )
    metrics = {"median_ms": "median ms (wall)", "best_ms": "best ms (wall)"}
    round_trip = f"status request round trip: median {1e6 * statistics.median(round_trips):.0f} us"
    write_json(
        args.json,
        machine=machine("cuda" if torch.cuda.is_available() and args.device != "cpu" else "cpu"),
        tables=[
            table(
                title=f"Service: a job through bufferany-server vs run_render in-process ({args.repeats} runs)",
                setup=setup,
                baseline="in-process run_render",
                metrics=metrics,
                rows={
                    "in-process run_render": {"median_ms": base * 1e3, "best_ms": min(in_process) * 1e3},
                    "through the service": {"median_ms": through * 1e3, "best_ms": min(service) * 1e3},
                },
                notes=[round_trip],
            ),
            table(
                title=f"Service: fixed cost of a job (resumed, every frame already written; {len(resumed_service)} runs)",
                setup=setup,
                baseline="in-process run_render",
                metrics=metrics,
                rows={
                    "in-process run_render": {
                        "median_ms": skip_base * 1e3,
                        "best_ms": min(resumed_in_process) * 1e3,
                    },
                    "through the service": {
                        "median_ms": skip_through * 1e3,
                        "best_ms": min(resumed_service) * 1e3,
                    },
                },
            ),
        ],
    )


if __name__ == "__main__":
    main()
