"""`bufferany-render` in real subprocesses: farm chunks agree with one run, a killed render resumes to
identical output, and each failure exits with its own code and a message that says what to do."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pipeline_plates import write_plate

from bufferany_core import conventions
from bufferany_core.errors import ExitCode
from bufferany_core.frames import read_channels
from bufferany_core.pipeline.cli import main

CLI = [sys.executable, "-m", "bufferany_core.pipeline.cli"]
TINY = ["--depth-model", "video-depth-anything-tiny", "--normal-model", "buffer-anytime-normal-tiny",
        "--weights", "random", "--device", "cpu", "--window", "8", "--overlap", "2", "--processing-size", "28"]
SHOT = range(1001, 1015)


def render(*args, env=None, timeout=300):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def passes(pattern: str, frames) -> dict[str, np.ndarray]:
    out = {"depth": [], "normal": []}
    for n in frames:
        path = pattern.replace("####", f"{n:04d}")
        out["depth"].append(read_channels(path, [conventions.DEPTH_CHANNEL]))
        out["normal"].append(read_channels(path, conventions.NORMAL_CHANNELS))
    return {k: np.stack(v) for k, v in out.items()}


@pytest.fixture(scope="module")
def whole_shot(tmp_path_factory):
    """One uninterrupted run of the whole shot (both passes), and its stdout/stderr."""
    root = tmp_path_factory.mktemp("whole")
    plate = write_plate(root / "plate", SHOT)
    out = str(root / "whole" / "shot_buffers.####.exr")
    run = render(plate, "-o", out, *TINY)
    assert run.returncode == 0, run.stderr
    return plate, out, run


def test_whole_run_reports_progress_per_frame_and_says_untrained_loudly(whole_shot):
    _, out, run = whole_shot
    lines = run.stdout.splitlines()
    assert [line for line in lines if line.startswith("Frame ")] == [
        f"Frame {n} written: {out.replace('####', f'{n:04d}')}" for n in SHOT
    ]
    progress = [int(line.split()[1].rstrip("%")) for line in lines if line.startswith("Progress: ")]
    alf = [int(line.split()[1].rstrip("%")) for line in lines if line.startswith("ALF_PROGRESS ")]
    assert progress == alf and progress == sorted(progress) and progress[-1] == 100
    first_frame_line = next(i for i, line in enumerate(lines) if line.startswith("Frame "))
    assert any(line.startswith("Progress: ") for line in lines[:first_frame_line])  # moving before the first frame
    assert "UNTRAINED WEIGHTS" in run.stderr


@pytest.mark.slow
def test_three_farm_chunks_agree_with_one_run(whole_shot, tmp_path):
    plate, whole_out, _ = whole_shot
    out = str(tmp_path / "chunks" / "shot_buffers.####.exr")
    for first, last in ((1001, 1005), (1006, 1010), (1011, 1016)):  # the last chunk overshoots the shot
        run = render(plate, "-o", out, "--frames", f"{first}-{last}", "--shot-range", "1001-1014", *TINY)
        assert run.returncode == 0, run.stderr
    whole, chunks = passes(whole_out, SHOT), passes(out, SHOT)
    for name in ("depth", "normal"):
        span = whole[name].max() - whole[name].min()
        assert np.abs(whole[name] - chunks[name]).max() < 0.01 * span, name
    assert not Path(out.replace("####", "1015")).exists()


@pytest.mark.slow
def test_killed_render_resumes_to_identical_output(whole_shot, tmp_path):
    plate, whole_out, _ = whole_shot
    out = str(tmp_path / "killed" / "shot_buffers.####.exr")
    proc = subprocess.Popen(CLI + [plate, "-o", out, *TINY], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    written = 0
    for line in proc.stdout:
        written += line.startswith("Frame ")
        if written == 3:
            proc.kill()  # SIGKILL: no clean-up of any kind
            break
    proc.wait(timeout=60)
    proc.stdout.close()
    finished = sorted(Path(out).parent.glob("shot_buffers.*.exr"))
    assert 3 <= len(finished) < len(SHOT)
    rerun = render(plate, "-o", out, *TINY)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.count("already rendered, skipped") == len(finished)
    resumed, whole = passes(out, SHOT), passes(whole_out, SHOT)
    for name in ("depth", "normal"):
        np.testing.assert_array_equal(resumed[name], whole[name])
    visible = [p.name for p in Path(out).parent.iterdir() if not p.name.startswith(".")]
    assert len(visible) == len(SHOT)


def test_missing_weights_offline_say_which_file_goes_where(tmp_path):
    plate = write_plate(tmp_path / "plate", range(1, 4))
    models = tmp_path / "models"
    models.mkdir()
    run = render(plate, "--passes", "depth", "--depth-model", "video-depth-anything-small",
                 env={"BUFFERANY_MODELS": str(models), "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")})
    assert run.returncode == ExitCode.MISSING_WEIGHTS, run.stderr
    assert "video_depth_anything_vits.pth" in run.stderr and str(models) in run.stderr
    assert not list((tmp_path / "plate").glob("*_buffers*"))


def test_unwritable_output_fails_before_any_work(tmp_path, capsys):
    plate = write_plate(tmp_path / "plate", range(1, 4))
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main([plate, "-o", str(blocker / "out.####.exr"), *TINY]) == ExitCode.OUTPUT_NOT_WRITABLE
    assert str(blocker) in capsys.readouterr().err


def test_missing_input_and_missing_frames(tmp_path, capsys):
    assert main([str(tmp_path / "nope.####.exr"), *TINY]) == ExitCode.INPUT_NOT_FOUND
    assert "nope.####.exr" in capsys.readouterr().err
    plate = write_plate(tmp_path / "plate", [1, 2, 4])
    assert main([plate, *TINY]) == ExitCode.MISSING_FRAMES
    assert "frame(s) missing" in capsys.readouterr().err
