"""One benchmark report: runs every benchmark in benchmarks/ and writes report.md, report.json and
PNG plots (per-frame error curves; the stabiliser benchmark's x-t slices) into --out.

Each benchmark runs in its own process with `--json`, and writes raw figures only: tables of
variants with one baseline row (`harness.table`). This script divides every figure by its
table's baseline, so each ratio compares two measurements of the same run on the same machine.

    .venv/bin/python benchmarks/report.py --out benchmarks/results [--quick] [--only KEY ...]

--quick: small inputs and few repeats, about 10 minutes on 2 CPU cores. A benchmark that fails
is reported as failed with the end of its log; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from harness import cpu_model, ratios

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Benchmark:
    key: str
    script: str
    title: str
    full: tuple[str, ...]  # arguments of the full run (the script's defaults where empty)
    quick: tuple[str, ...]


BENCHMARKS = (
    Benchmark(
        "depth_models",
        "bench_depth_models.py",
        "Depth models: image vs video, speed, memory, FLOPs",
        (),
        ("--size", "tiny", "--frames", "4", "--height", "70", "--width", "126", "--repeats", "3"),
    ),
    Benchmark(
        "model_cost",
        "bench_model_cost.py",
        "Depth model at real size: Buffer Anytime vs its prior; window memory, what 24 GB hold",
        (),
        (
            *("--time-size", "tiny", "--frames", "4", "--height", "70", "--width", "126", "--repeats", "3"),
            *("--memory-sizes", "tiny", "--memory-frames", "1", "2"),
        ),
    ),
    Benchmark(
        "normal_models",
        "bench_normal_models.py",
        "Normal models: image vs video, speed, memory",
        (),
        (
            *("--frames", "4", "--height", "48", "--width", "80", "--processing-size", "64"),
            *("--repeats", "3", "--threads", "1"),  # one thread: CPU time counts work, not spinning
        ),
    ),
    Benchmark(
        "flow",
        "bench_flow.py",
        "Flow backends: DIS vs RAFT small / large (random weights)",
        (),
        ("--pairs", "2", "--width", "160", "--height", "96", "--repeats", "1"),
    ),
    Benchmark(
        "stabilize",
        "bench_stabilize.py",
        "Stabiliser: quality and cost on shots with exact depth",
        (),
        ("--frames", "16", "--real-frames", "16", "--real-width", "160", "--real-clips", "1", "--no-blender"),
    ),
    Benchmark(
        "stabilize_working_size",
        "bench_stabilize.py",
        "Stabiliser at production plate sizes: the bounded working size's departure and cost",
        ("--working-size-only", "--threads", "1"),
        (
            *("--working-size-only", "--threads", "1", "--ws-seeds", "1", "--hard-frames", "12"),
            *("--ws-plate", "320x180", "--ws-small", "90", "--ws-cost-frames", "4"),
        ),
    ),
    Benchmark(
        "chunks",
        "bench_chunks.py",
        "Farm chunks vs one run; the stabiliser's cost in a render",
        (),
        ("--processing-size", "56"),
    ),
    Benchmark(
        "pipeline_memory",
        "bench_pipeline_memory.py",
        "Pipeline memory: 30 vs 300 frames",
        (),
        ("--size", "64", "36"),
    ),
    Benchmark(
        "pipeline_feed",
        "bench_pipeline_feed.py",
        "Pipeline without the models: null-model renders vs bare OpenImageIO read + write",
        (),
        ("--quick",),
    ),
    Benchmark(
        "service",
        "bench_service_overhead.py",
        "Service overhead: bufferany-server vs in-process",
        (),
        ("--frames", "6", "--repeats", "2", "--threads", "1"),
    ),
    Benchmark(
        "exr_io",
        "frames_io.py",
        "EXR read/write: frame layer vs raw OpenImageIO",
        (),
        ("--frames", "2", "--repeats", "1", "--sizes", "1920x1080", "--compressions", "zip"),
    ),
    Benchmark(
        "training_miniature",
        "bench_training_miniature.py",
        "Training miniature: unlabelled fine-tuning vs the image prior",
        (),
        ("--prior-steps", "60", "--steps", "8"),
    ),
)


def machine_description() -> dict:
    import torch

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def run_benchmark(benchmark: Benchmark, out: Path, *, quick: bool) -> dict:
    """Run one benchmark with --json; return its section of the report (images it made are copied
    into `out`, its log into `out/logs`)."""
    script = HERE / benchmark.script
    section = {"key": benchmark.key, "title": benchmark.title, "script": f"benchmarks/{benchmark.script}"}
    if not script.is_file():
        return {**section, "status": "pending", "reason": f"{section['script']} does not exist yet"}
    with tempfile.TemporaryDirectory(prefix=f"report-{benchmark.key}-") as raw:
        return _run(benchmark, script, section, Path(raw), out, quick=quick)


def _run(benchmark: Benchmark, script: Path, section: dict, raw: Path, out: Path, *, quick: bool) -> dict:
    arguments = [*(benchmark.quick if quick else benchmark.full), "--json", str(raw / "figures.json")]
    section["command"] = " ".join(["python", section["script"], *arguments[:-2]])
    print(f"[report] {section['command']}", flush=True)
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, str(script), *arguments], cwd=HERE.parent, capture_output=True, text=True
    )
    section["seconds"] = round(time.perf_counter() - start, 1)
    log = out / "logs" / f"{benchmark.key}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(run.stdout + run.stderr)
    section["log"] = str(log.relative_to(out))
    if run.returncode != 0 or not (raw / "figures.json").is_file():
        tail = (run.stdout + run.stderr).strip().splitlines()[-8:]
        return {**section, "status": "failed", "reason": f"exit code {run.returncode}", "log_tail": tail}
    figures = json.loads((raw / "figures.json").read_text())
    files = {}
    for name, caption in figures.get("files", {}).items():
        shutil.copyfile(raw / name, out / f"{benchmark.key}_{name}")
        files[f"{benchmark.key}_{name}"] = caption
    return {
        **section,
        "status": "ok",
        "machine": figures["machine"],
        "tables": figures["tables"],
        "files": files,
    }


def assemble(sections: list[dict], *, machine: dict, quick: bool) -> dict:
    """The report: the machine, and each section's tables with their ratios to the baseline."""
    for section in sections:
        for table in section.get("tables", ()):
            table["ratios"] = ratios(table)
    return {
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "mode": "quick" if quick else "full",
        "machine": machine,
        "sections": sections,
    }


def plot_curves(report: dict, out: Path) -> None:
    """A PNG of every per-frame series (AbsRel per frame before and after stabilising); each
    table lists its plots under "plots"."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for section in report["sections"]:
        for table in section.get("tables", ()):
            for name, curves in table["series"].items():
                figure, axes = plt.subplots(figsize=(6, 2.6), dpi=100)
                for label, values in curves.items():
                    axes.plot(
                        range(len(values)),
                        [v if v is not None else float("nan") for v in values],
                        label=label,
                    )
                axes.set_xlabel("frame (from the shot's first)")
                axes.set_ylabel(name.replace("_", " "))
                axes.set_title(table["title"], fontsize=9)
                axes.grid(alpha=0.3)
                axes.legend(fontsize=8)
                figure.tight_layout()
                path = f"{section['key']}_{_slug(table['title'])}_{name}.png".replace("_per_frame", "")
                figure.savefig(out / path)
                plt.close(figure)
                table.setdefault("plots", []).append(path)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")[:40].strip("_")


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 0.01:
        return f"{value:.3g}" if magnitude < 10 else f"{value:.1f}"
    return f"{value:.2e}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}x"


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# Benchmark report",
        "",
        f"Generated {report['generated']} by `benchmarks/report.py` ({report['mode']} run).",
        "",
        f"**Machine:** {m['cpu']}, {m['cores']} cores, {m['device']}, torch {m['torch']}, "
        f"Python {m['python']}, {m['platform']}; load average at the start {m['load_average']}.",
        "",
        "Every ratio (`x`) divides a figure by the baseline row of its own table, measured in the same "
        "run on the same machine. Models run with deterministic random weights: speed and memory are "
        "real, the passes' content is not. CPU timings on a shared machine are noisy; ratios within one "
        "table are what to read.",
        "",
    ]
    if report["mode"] == "quick":
        lines += ["*Quick run: small inputs and few repeats.*", ""]
    lines += _summary(report)
    for section in report["sections"]:
        lines += [f"## {section['title']}", ""]
        if section["status"] != "ok":
            lines += [f"**{section['status'].upper()}**: {section['reason']}.", ""]
            if section.get("log_tail"):
                lines += ["```", *section["log_tail"], "```", ""]
            continue
        lines += [f"`{section['command']}` ({section['seconds']:.0f} s); machine: {section['machine']}.", ""]
        for table in section["tables"]:
            lines += _table_markdown(table)
        for path, caption in section["files"].items():
            lines += [f"![{caption}]({path})", "", f"*{caption}*", ""]
    return "\n".join(lines)


def _summary(report: dict) -> list[str]:
    """One line per table: its headline figure for every variant, as a ratio to the baseline (the
    figure itself where the baseline has none)."""
    lines = ["## Summary", "", "| table | figure (vs baseline) | variants |", "|---|---|---|"]
    for section in report["sections"]:
        if section["status"] != "ok":
            lines.append(f"| {section['title']} | {section['status']} | |")
            continue
        for table in section["tables"]:
            key = table["headline"]
            cells = []
            for name, figures in table["rows"].items():
                ratio = table["ratios"][name].get(key)
                if name != table["baseline"] and (ratio is not None or figures.get(key) is not None):
                    cells.append(f"{name} {_ratio(ratio) if ratio is not None else _number(figures[key])}")
            lines.append(
                f"| {table['title']} | {table['metrics'][key]} (vs {table['baseline']}) | {'; '.join(cells)} |"
            )
    return [*lines, ""]


def _table_markdown(table: dict) -> list[str]:
    metrics = table["metrics"]
    header = ["variant"] + [part for label in metrics.values() for part in (label, "x")]
    lines = [f"### {table['title']}", "", f"{table['setup']}. Baseline: **{table['baseline']}**.", ""]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, figures in table["rows"].items():
        cells = []
        for key in metrics:
            cells += [_number(figures.get(key)), _ratio(table["ratios"][name].get(key))]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {note}" for note in table["notes"]]
    lines += [f"![{table['title']}]({plot})" for plot in table.get("plots", ())]
    return [*lines, ""] if table["notes"] or table.get("plots") else lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for report.md, report.json, PNGs")
    parser.add_argument("--quick", action="store_true", help="small inputs, about 10 minutes on 2 CPU cores")
    parser.add_argument(
        "--only",
        nargs="+",
        choices=[b.key for b in BENCHMARKS],
        default=None,
        help="run these benchmarks only",
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    machine = machine_description()
    chosen = [b for b in BENCHMARKS if args.only is None or b.key in args.only]
    sections = [run_benchmark(benchmark, args.out, quick=args.quick) for benchmark in chosen]
    report = assemble(sections, machine=machine, quick=args.quick)
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    plot_curves(report, args.out)
    report["files"] = sorted(
        {path for s in sections for path in s.get("files", {})}
        | {path for s in sections for t in s.get("tables", ()) for path in t.get("plots", ())}
        | {s["log"] for s in sections if "log" in s}
    )
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    (args.out / "report.md").write_text(markdown(report))
    failed = [s["key"] for s in sections if s["status"] == "failed"]
    print(f"[report] {args.out / 'report.md'}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
