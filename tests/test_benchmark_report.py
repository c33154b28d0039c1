"""benchmarks/report.py: it runs a real benchmark (the EXR one, 1 frame) in its own process, and
every ratio in report.json and report.md is that run's figure over the baseline row of its table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import harness  # noqa: E402
import report  # noqa: E402


@pytest.fixture(scope="module")
def exr_report(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("report")
    run = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "report.py"),
            "--out",
            str(out),
            "--quick",
            "--only",
            "exr_io",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return out, json.loads((out / "report.json").read_text())


def test_report_states_the_machine_and_mode(exr_report):
    _, data = exr_report
    machine = data["machine"]
    assert machine["cores"] >= 1 and machine["cpu"] and machine["torch"] and machine["device"]
    assert data["mode"] == "quick"
    assert [s["key"] for s in data["sections"]] == ["exr_io"]


def test_ratios_are_figures_over_the_same_runs_baseline(exr_report):
    _, data = exr_report
    section = data["sections"][0]
    assert section["status"] == "ok", section
    assert [t["baseline"] for t in section["tables"]] == ["bare read", "bare write", "bare decode (OpenCV)"]
    for table in section["tables"]:
        base = table["rows"][table["baseline"]]["ms_per_frame"]
        assert base > 0
        assert table["ratios"][table["baseline"]]["ms_per_frame"] == 1.0
        for name, figures in table["rows"].items():
            assert table["ratios"][name]["ms_per_frame"] == pytest.approx(figures["ms_per_frame"] / base)


def test_markdown_has_a_table_per_benchmark_table_with_ratios(exr_report):
    out, data = exr_report
    text = (out / "report.md").read_text()
    assert text.startswith("# Benchmark report")
    assert data["machine"]["cpu"] in text
    for table in data["sections"][0]["tables"]:
        assert f"### {table['title']}" in text
        for name, ratio in table["ratios"].items():
            row = next(line for line in text.splitlines() if line.startswith(f"| {name} |"))
            assert f"{ratio['ms_per_frame']:.2f}x" in row
    summary = next(line for line in text.splitlines() if line.startswith("| EXR read"))
    assert (
        f"read_frames {data['sections'][0]['tables'][0]['ratios']['read_frames']['ms_per_frame']:.2f}x"
        in summary
    )
    assert (out / "logs" / "exr_io.log").is_file() and "logs/exr_io.log" in data["files"]


def test_a_missing_benchmark_is_reported_as_pending(tmp_path):
    missing = report.Benchmark("nothing", "bench_does_not_exist.py", "Not written yet", (), ())
    section = report.run_benchmark(missing, tmp_path, quick=True)
    assert section["status"] == "pending" and "bench_does_not_exist.py" in section["reason"]
    text = report.markdown(report.assemble([section], machine=report.machine_description(), quick=True))
    assert "## Not written yet" in text and "**PENDING**" in text


def test_ratio_of_a_missing_or_zero_baseline_is_none_and_per_frame_curves_are_plotted(tmp_path):
    table = harness.table(
        title="Chunks",
        setup="three chunks",
        baseline="one run",
        metrics={"seconds": "s", "diff": "max diff %"},
        rows={"one run": {"seconds": 2.0, "diff": 0.0}, "chunks": {"seconds": 5.0, "diff": 0.1}},
        series={"abs_rel_per_frame": {"before": [0.2, 0.3, 0.25], "after": [0.1, 0.1, 0.12]}},
    )
    data = report.assemble(
        [{"key": "chunks", "title": "Chunks", "status": "ok", "tables": [table], "files": {}}],
        machine=report.machine_description(),
        quick=False,
    )
    assert data["sections"][0]["tables"][0]["ratios"]["chunks"] == {"seconds": 2.5, "diff": None}
    report.plot_curves(data, tmp_path)
    (plot,) = data["sections"][0]["tables"][0]["plots"]
    assert (tmp_path / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_table_must_name_an_existing_baseline_and_label_every_figure():
    with pytest.raises(ValueError, match="baseline 'missing'"):
        harness.table(title="t", setup="s", baseline="missing", metrics={"a": "A"}, rows={"x": {"a": 1.0}})
    with pytest.raises(ValueError, match="without a label"):
        harness.table(title="t", setup="s", baseline="x", metrics={"a": "A"}, rows={"x": {"b": 1.0}})
    with pytest.raises(ValueError, match="headline 'b'"):
        harness.table(
            title="t", setup="s", baseline="x", metrics={"a": "A"}, rows={"x": {"a": 1.0}}, headline="b"
        )
