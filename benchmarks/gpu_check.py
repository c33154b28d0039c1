"""The GPU check's steps and its one table (benchmarks/gpu_check.sh installs the carried wheels and
runs this; docs/gpu_check.md says how a session runs it on a GPU machine).

Each step runs in its own process with a time limit taken from one budget, so that a hung or slow
step costs its share and the others still run; a step that fails is reported as failed with the
end of its log. Steps:

- CUDA-only tests: the tests of tests/ marked `skipif(not torch.cuda.is_available())` (found by
  reading the files), through pytest (on the CPU they run and are skipped: the discovery is checked);
- the sample shot (examples/sample_shot) rendered with `--precision auto` (fp16 on CUDA) and `fp32`,
  random weights at the default models' real sizes (CPU: the tiny models), and their largest
  difference per pass;
- image vs video depth models at 518 px (benchmarks/bench_depth_models.py), the normal models at
  518 px (bench_normal_models.py), the depth model's cost and window memory (bench_model_cost.py),
  and the null-model pipeline at 4K (bench_pipeline_feed.py, once it exists).

    python benchmarks/gpu_check.py --device cuda [--json PATH] [--budget 450]
    python benchmarks/gpu_check.py --device cpu          # tiny sizes: what the test suite runs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from harness import machine, ratios

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PLATE = REPO / "examples" / "sample_shot" / "plate" / "shot.####.exr"
STEPS = (
    "cuda_tests",
    "render_auto",
    "render_fp32",
    "depth_models",
    "normal_models",
    "pipeline_feed",
    "model_cost",
)
CUDA_ONLY = re.compile(r"^\s*@pytest\.mark\.skipif\(\s*not torch\.cuda\.is_available\(\)")


@dataclass(frozen=True)
class Step:
    key: str
    title: str
    share: float  # of the budget, at most
    command: list[str]
    json: Path | None = None  # the benchmark's --json figures


def cuda_only_tests(tests: Path = REPO / "tests") -> list[str]:
    """pytest node ids (file::function) of the tests that skip without CUDA."""
    found = []
    for path in sorted(tests.glob("test_*.py")):
        pending = False
        for line in path.read_text().splitlines():
            if CUDA_ONLY.search(line):
                pending = True
            elif pending and (match := re.match(r"def (test_\w+)", line)):
                found.append(f"{path.relative_to(tests.parent)}::{match.group(1)}")
                pending = False
    return found


def render_command(output: Path, precision: str, args: argparse.Namespace) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "bufferany_core.pipeline.cli",
        str(PLATE),
        "-o",
        str(output / "shot.####.exr"),
    ]
    command += ["--device", args.device, "--precision", precision, "--weights", "random"]
    if not args.cuda:  # tiny models on a few frames: seconds on a CPU
        command += [
            "--depth-model",
            "video-depth-anything-tiny",
            "--normal-model",
            "buffer-anytime-normal-tiny",
        ]
        command += ["--processing-size", "56", "--frames", "1001-1003"]
    return command


def steps(args: argparse.Namespace, work: Path) -> list[Step]:
    python = sys.executable
    tests = cuda_only_tests()
    cuda = args.cuda
    device = ["--device", args.device]
    pending = []
    if tests:
        pending.append(
            Step(
                "cuda_tests",
                "CUDA-only tests",
                0.15,
                [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
            )
        )
    for precision in ("auto", "fp32"):
        pending.append(
            Step(
                f"render_{precision}",
                f"sample shot, --precision {precision}",
                0.2,
                render_command(work / precision, precision, args),
            )
        )
    bench = {
        "depth_models": (
            "depth models, image vs video",
            ["bench_depth_models.py", *device, "--precision", "fp16"]
            if cuda
            else [
                "bench_depth_models.py",
                "--size",
                "tiny",
                "--frames",
                "2",
                "--height",
                "42",
                "--width",
                "70",
                "--repeats",
                "1",
            ],
        ),
        "normal_models": (
            "normal models",
            ["bench_normal_models.py", *device, "--processing-size", "518", "--repeats", "2"]
            if cuda
            else [
                "bench_normal_models.py",
                "--frames",
                "2",
                "--height",
                "32",
                "--width",
                "48",
                "--processing-size",
                "32",
                "--repeats",
                "1",
                "--threads",
                "1",
            ],
        ),
        "pipeline_feed": (
            "null-model pipeline",
            ["bench_pipeline_feed.py", *device, "--resolution", "3840x2160" if cuda else "192x108"]
            + ["--frames", "48" if cuda else "4", "--repeats", "1"],
        ),
        "model_cost": (  # last: the extra, which the budget may cut
            "depth model cost and window memory",
            ["bench_model_cost.py", *device]
            if cuda
            else [
                "bench_model_cost.py",
                "--time-size",
                "tiny",
                "--height",
                "42",
                "--width",
                "70",
                "--frames",
                "2",
                "--memory-sizes",
                "--repeats",
                "1",
            ],
        ),
    }
    for key, (title, (script, *rest)) in bench.items():
        figures = work / f"{key}.json"
        share = 0.3 if key == "pipeline_feed" else 0.2
        pending.append(
            Step(key, title, share, [python, str(HERE / script), *rest, "--json", str(figures)], figures)
        )
    return [step for step in pending if not args.only or step.key in args.only]


def run_step(step: Step, *, seconds: float, log) -> dict:
    """Run one step within `seconds`; its status, time, figures (the benchmark's tables) or log tail."""
    result = {
        "title": step.title,
        "command": " ".join(Path(a).name if a.startswith("/") else a for a in step.command),
    }
    script = Path(step.command[1])
    if script.suffix == ".py" and not script.is_file():
        return {**result, "status": "pending", "reason": f"benchmarks/{script.name} does not exist yet"}
    print(f"[gpu-check] {step.key}: {result['command']} (at most {seconds:.0f} s)", flush=True)
    start = time.perf_counter()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # A session of its own: on timeout the whole group goes, the benchmarks' worker processes too
    # (one left holding the pipe would keep the check waiting).
    process = subprocess.Popen(
        step.command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        output, _ = process.communicate(timeout=seconds)
        code = process.returncode
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, code = process.communicate()[0], None
    result["seconds"] = round(time.perf_counter() - start, 1)
    log.write(f"\n===== {step.key}: {result['command']}\n{output}")
    if code is None:
        return {
            **result,
            "status": "timeout",
            "reason": f"stopped after {seconds:.0f} s",
            "log_tail": _tail(output),
        }
    if step.key == "cuda_tests":
        counts = dict.fromkeys(("passed", "failed", "skipped", "error"), 0)
        for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?)", output):
            counts[word.rstrip("s") if word.startswith("error") else word] = int(number)
        result["counts"] = counts
    if code != 0 or (step.json is not None and not step.json.is_file()):
        return {**result, "status": "failed", "reason": f"exit code {code}", "log_tail": _tail(output)}
    if step.json is not None:
        figures = json.loads(step.json.read_text())
        result["machine"], result["tables"] = figures["machine"], figures["tables"]
    return {**result, "status": "ok"}


def _tail(output: str) -> list[str]:
    return output.strip().splitlines()[-12:]


def precision_difference(auto: Path, fp32: Path) -> dict:
    """Largest difference between the two renders: depth as a fraction of the fp32 shot's range,
    normals as unit-vector components."""
    import numpy as np

    from bufferany_core.frames import read_channels

    depth, normal, low, high, frames = 0.0, 0.0, np.inf, -np.inf, 0
    for reference in sorted(fp32.glob("shot.*.exr")):
        other = auto / reference.name
        a, b = read_channels(reference, ["depth.Z"]), read_channels(other, ["depth.Z"])
        depth = max(depth, float(np.abs(a - b).max()))
        low, high = min(low, float(a.min())), max(high, float(a.max()))
        names = ["N.X", "N.Y", "N.Z"]
        normal = max(
            normal, float(np.abs(read_channels(reference, names) - read_channels(other, names)).max())
        )
        frames += 1
    if not frames:
        raise ValueError(f"{fp32}: no frames rendered")
    return {"frames": frames, "depth_max_diff": depth, "depth_range": high - low, "normal_max_diff": normal}


def summary_rows(results: dict) -> list[tuple[str, str, str]]:
    """The table's rows: (check, variant, figures)."""
    rows = []
    for key, step in results.items():
        if key == "precision":
            continue
        timing = f" ({step['seconds']:.0f} s)" if "seconds" in step else ""
        if step["status"] != "ok":
            rows.append((step["title"], "", f"{step['status'].upper()}: {step.get('reason', '')}{timing}"))
            continue
        if "counts" in step:
            rows.append(
                (step["title"], "", ", ".join(f"{n} {w}" for w, n in step["counts"].items()) + timing)
            )
        for table in step.get("tables", ()):
            relative = ratios(table)
            for variant, figures in table["rows"].items():
                cells = []
                for metric, label in table["metrics"].items():
                    value, ratio = figures.get(metric), relative[variant].get(metric)
                    if value is not None:
                        cells.append(
                            f"{value:.4g} {label}"
                            + (
                                f" ({ratio:.2f}x)"
                                if ratio is not None and variant != table["baseline"]
                                else ""
                            )
                        )
                rows.append((table["title"], variant, "; ".join(cells)))
        if key.startswith("render_"):
            rows.append((step["title"], "", f"rendered{timing}"))
    precision = results.get("precision")
    if precision:
        if "error" in precision:
            rows.append(("fp16 (auto) vs fp32 render", "", f"FAILED: {precision['error']}"))
        else:
            rel = (
                precision["depth_max_diff"] / precision["depth_range"]
                if precision["depth_range"]
                else float("nan")
            )
            rows.append(
                (
                    "fp16 (auto) vs fp32 render",
                    f"{precision['frames']} frames",
                    f"depth max |diff| {precision['depth_max_diff']:.3g} ({rel:.2%} of the shot's range); "
                    f"normals max |diff| {precision['normal_max_diff']:.3g}",
                )
            )
    return rows


def print_summary(rows: list[tuple[str, str, str]], header: str) -> None:
    first = max(len(r[0]) for r in rows)
    second = max(len(r[1]) for r in rows)
    print(f"\n===== GPU check: {header}")
    print(f"{'check':<{first}}  {'variant':<{second}}  figures")
    for check, variant, figures in rows:
        print(f"{check:<{first}}  {variant:<{second}}  {figures}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (real sizes) or cpu (tiny sizes)")
    parser.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds for all steps together (CUDA 450: the check fits 8 minutes; CPU 1500: a shared CPU is slow)",
    )
    parser.add_argument("--json", type=Path, default=None, help="write every step's figures here")
    parser.add_argument("--log", type=Path, default=None, help="write every step's output here")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=STEPS,
        default=None,
        help="run these steps only (a rerun of those that failed)",
    )
    args = parser.parse_args()
    args.cuda = args.device.startswith("cuda")
    args.budget = args.budget or (450 if args.cuda else 1500)
    deadline = time.monotonic() + args.budget
    header = f"{machine(args.device)}; load average {os.getloadavg()[0]:.2f}"
    print(f"[gpu-check] {header}", flush=True)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as raw:
        work = Path(raw)
        log_path = args.log or work / "gpu_check.log"
        with log_path.open("w") as log:
            for step in steps(args, work):
                left = deadline - time.monotonic()
                if left < 5:
                    results[step.key] = {
                        "title": step.title,
                        "status": "skipped",
                        "reason": "the budget is spent",
                    }
                    continue
                results[step.key] = run_step(
                    step, seconds=min(left, max(step.share * args.budget, 60)), log=log
                )
        if (
            results.get("render_auto", {}).get("status")
            == "ok"
            == results.get("render_fp32", {}).get("status")
        ):
            try:
                results["precision"] = precision_difference(work / "auto", work / "fp32")
            except (OSError, ValueError) as exc:
                results["precision"] = {"error": str(exc)}
    rows = summary_rows(results)
    print_summary(rows, header)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps({"machine": header, "device": args.device, "steps": results, "table": rows}, indent=1)
        )
    failed = [key for key, step in results.items() if step.get("status") in ("failed", "timeout")]
    failed += ["precision"] if "error" in results.get("precision", {}) else []
    if failed:
        print(f"[gpu-check] FAILED: {', '.join(failed)}")
        raise SystemExit(1)


if __name__ == "__main__":
    main()
