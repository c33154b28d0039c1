"""A render under a farm's signals and a full disk (issue 18): SIGTERM abandons the frame in hand
atomically, prints one line and exits 13; a SIGKILL's temporary files are removed by the next run;
a full disk exits 15 saying so; a failed run leaves no empty folder it made."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pipeline_plates import write_plate

from bufferany_core.errors import ExitCode
from bufferany_core.frames import read_channels

CLI = [sys.executable, "-m", "bufferany_core.pipeline.cli"]
TINY = ["--passes", "depth", "--depth-model", "video-depth-anything-tiny", "--weights", "random", "--device", "cpu",
        "--window", "8", "--overlap", "2", "--processing-size", "28"]


def start(*args) -> subprocess.Popen:
    return subprocess.Popen(CLI + [str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_frames(proc: subprocess.Popen, count: int) -> list[str]:
    lines = []
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if sum(1 for seen in lines if seen.startswith("Frame ") and " written: " in seen) >= count:
            return lines
    raise AssertionError("the render did not write frames in time: " + "".join(lines))


def temporaries(folder: Path) -> list[Path]:
    return sorted(folder.glob(".*.tmp.exr"))


@pytest.mark.slow
def test_sigterm_abandons_the_frame_in_hand_and_says_how_to_resume(tmp_path):
    plate = write_plate(tmp_path / "plate", range(1, 41))
    out = tmp_path / "out" / "shot_depth.####.exr"
    proc = start(plate, "-o", out, *TINY)
    wait_for_frames(proc, 2)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == ExitCode.CANCELLED, stderr
    lines = [line for line in stderr.splitlines() if "SIGTERM" in line]
    assert len(lines) == 1 and "run the same command again to resume" in lines[0]
    assert not temporaries(out.parent)
    finished = sorted(out.parent.glob("shot_depth.*.exr"))
    assert 2 <= len(finished) < 40
    for path in finished:  # every file there is whole
        read_channels(path, ["depth.Z"])
    again = subprocess.run(CLI + [str(plate), "-o", str(out), *TINY, "--dry-run"], capture_output=True, text=True, timeout=120)
    assert f"Already rendered (skipped): 1-{len(finished)}" in again.stdout


@pytest.mark.slow
def test_temporaries_of_a_sigkilled_render_are_cleaned_by_the_next_run(tmp_path):
    plate = write_plate(tmp_path / "plate", range(1, 13))
    out = tmp_path / "out" / "shot_depth.####.exr"
    proc = start(plate, "-o", out, *TINY)
    wait_for_frames(proc, 1)
    proc.kill()
    proc.communicate(timeout=60)
    # what a kill in the middle of a write leaves: the killed process's hidden temporary file
    left = out.parent / f".shot_depth.0012.{proc.pid}.0123abcd.tmp.exr"
    left.write_bytes(b"half a frame")
    run = subprocess.run(CLI + [str(plate), "-o", str(out), *TINY], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert not temporaries(out.parent)
    assert len(list(out.parent.glob("shot_depth.*.exr"))) == 12
    assert "Summary: " in run.stdout and "frames/s" in run.stdout and "Time: frame 12 took" in run.stdout


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root); docs/farm.md says how to check disk-full by hand")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


def test_a_full_disk_says_so_with_its_own_exit_code(tmp_path, small_disk):
    plate = write_plate(tmp_path / "plate", range(1, 4), size=(256, 160))
    run = subprocess.run(CLI + [str(plate), "-o", str(small_disk / "out" / "shot_depth.####.exr"), *TINY],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == ExitCode.DISK_FULL, run.stderr
    assert "the disk is full" in run.stderr
    assert not list(small_disk.rglob("*.exr")) and not temporaries(small_disk / "out")
    assert not (small_disk / "out").exists()  # the folder it made, empty, is gone


def test_a_failed_run_leaves_no_empty_folder_it_made(tmp_path):
    plate = write_plate(tmp_path / "plate", range(1, 4))
    broken = tmp_path / "plate" / "shot.0002.exr"
    broken.write_bytes(broken.read_bytes()[:100])
    (tmp_path / "renders").mkdir()
    run = subprocess.run(CLI + [str(plate), "-o", str(tmp_path / "renders" / "new" / "deeper" / "x.####.exr"), *TINY],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == ExitCode.UNREADABLE_IMAGE, run.stderr
    assert list((tmp_path / "renders").iterdir()) == []


def test_version_and_bad_arguments_answer_fast():
    for args in (["--version"], ["--no-such-option"], ["--help"]):
        began = time.monotonic()
        run = subprocess.run(CLI + args, capture_output=True, text=True, timeout=60)
        assert time.monotonic() - began < 2.0  # interpreter start included; no torch import
        assert run.returncode == (2 if args == ["--no-such-option"] else 0)
    assert subprocess.run(CLI + ["--version"], capture_output=True, text=True).stdout.startswith("bufferany-render ")
    sheet = [sys.executable, "-m", "bufferany_core.pipeline.contact_sheet", "--version"]
    assert subprocess.run(sheet, capture_output=True, text=True).stdout.startswith("bufferany-contact-sheet ")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    code = "import sys, bufferany_core.pipeline.cli as c; c.build_parser(); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout.strip() == "False"
