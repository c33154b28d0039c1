"""benchmarks/gpu_check.sh, the one call a session with a GPU machine runs (docs/gpu_check.md), run
here as `--device cpu` at tiny sizes: every step runs, the table and JSON report what each did,
and the CUDA-only tests it finds are the ones that skip without CUDA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402

BENCHMARKS = ("depth_models", "normal_models", "model_cost", "pipeline_feed")


def test_it_finds_the_tests_that_need_cuda(tmp_path):
    (tmp_path / "test_a.py").write_text(
        "import pytest, torch\n"
        "@pytest.mark.skipif(not torch.cuda.is_available(), reason='GPU')\n"
        "@pytest.mark.parametrize('x', [1, 2])\n"
        "def test_on_gpu(x): pass\n"
        "@pytest.mark.skipif(torch.cuda.is_available(), reason='CPU only')\n"
        "def test_without_gpu(): pass\n"
        "def test_anywhere(): pass\n"
    )
    found = gpu_check.cuda_only_tests(tmp_path)
    assert [node.split("::")[1] for node in found] == ["test_on_gpu"]
    # The project's own: the autocast check of the depth models is one of them.
    assert (
        "tests/test_depth_loading.py::test_autocast_on_cuda_stays_close_to_fp32"
        in gpu_check.cuda_only_tests()
    )


@pytest.mark.slow
def test_the_check_runs_on_the_cpu_and_reports_every_step(tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=1800,
        env=dict(os.environ, PYTHON=sys.executable),
        cwd=tmp_path,  # the script finds the repository itself
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    report = json.loads((out / "gpu_check.json").read_text())
    steps = report["steps"]
    assert report["device"] == "cpu"

    tests = steps["cuda_tests"]
    assert tests["status"] == "ok"
    cuda_only = len(gpu_check.cuda_only_tests())
    assert tests["counts"]["skipped"] >= cuda_only >= 1  # parametrised tests count once per case
    assert tests["counts"]["passed"] == tests["counts"]["failed"] == 0

    assert steps["render_auto"]["status"] == steps["render_fp32"]["status"] == "ok"
    # On the CPU, auto is fp32: the two renders are the same to the bit.
    precision = steps["precision"]
    assert precision["frames"] == 3 and precision["depth_range"] > 0
    assert precision["depth_max_diff"] == precision["normal_max_diff"] == 0

    for key in BENCHMARKS:
        if key == "pipeline_feed" and steps[key]["status"] == "pending":
            continue  # its benchmark lands with the feeding pipeline
        assert steps[key]["status"] == "ok", steps[key]
        assert steps[key]["tables"], key
        for table in steps[key]["tables"]:
            assert all(row[table["headline"]] > 0 for row in table["rows"].values()), table["title"]

    # One table at the end: a row for every check, the same rows as the JSON's.
    table = run.stdout[run.stdout.index("===== GPU check") :]
    for check, _variant, figures in report["table"]:
        assert check in table and figures in table
    for key in BENCHMARKS:
        for benchmark_table in steps[key].get("tables", ()):
            assert benchmark_table["title"] in table
    log = (out / "gpu_check.log").read_text()
    assert "bufferany_core.pipeline.cli" in log and "bench_depth_models.py" in log
