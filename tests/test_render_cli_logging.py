"""What a wrangler's log parser reads from `bufferany-render`: one JSON object per event with
`--log-format json`, and a mistyped frame range refused before the models' libraries load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from pipeline_plates import write_plate

from bufferany_core.errors import ExitCode

CLI = [sys.executable, "-m", "bufferany_core.pipeline.cli"]
TINY = ["--passes", "depth", "--depth-model", "video-depth-anything-tiny", "--weights", "random", "--device", "cpu",
        "--window", "6", "--overlap", "2", "--processing-size", "28"]


def test_json_log_format_prints_one_object_per_event(tmp_path):
    plate = write_plate(tmp_path / "plate", range(1, 5))
    run = subprocess.run([*CLI, plate, "--log-format", "json", *TINY], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]  # every line is one JSON object
    kinds = [e["type"] for e in events]
    assert kinds[0] == "started" and kinds[-1] == "summary"
    assert [e["frame"] for e in events if e["type"] == "frame_done"] == [1, 2, 3, 4]
    assert [e["frame"] for e in events if e["type"] == "frame_time"] == [1, 2, 3, 4]
    assert [e["percent"] for e in events if e["type"] == "progress"][-1] == 100.0
    summary = events[-1]
    assert summary["written"] == [1, 2, 3, 4] and summary["skipped"] == [] and summary["elapsed_s"] > 0
    assert "Progress:" not in run.stdout  # the text lines are not mixed in


def test_a_huge_frame_range_is_refused_before_torch_loads(tmp_path):
    plate = write_plate(tmp_path / "plate", range(1, 5))
    code = textwrap.dedent(
        f"""
        import sys
        from bufferany_core.pipeline.cli import main
        status = main([{plate!r}, "--frames", "1-999999999"])
        print(int(status), "torch" in sys.modules)
        """
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stdout.split() == [str(int(ExitCode.BAD_ARGUMENTS)), "False"], run.stderr
    assert "--frames '1-999999999' names 999999999 frames; the limit is" in run.stderr
