"""Never overwrite different work silently (issue 18): frames from other settings stop the run before
it renders, naming the settings that differ; resume checks pixels, not only headers; the plate's
content and the weights' content are part of the settings; the input is never an output; temporary
files a killed render left are removed by the next run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_plates import write_plate

from bufferany_core.errors import BadArgumentsError, ExitCode
from bufferany_core.jobs import RenderJob
from bufferany_core.pipeline.render import plan_render

CLI = [sys.executable, "-m", "bufferany_core.pipeline.cli"]
TINY = ["--passes", "depth", "--depth-model", "video-depth-anything-tiny", "--weights", "random", "--device", "cpu",
        "--window", "8", "--overlap", "2", "--processing-size", "28"]
FRAMES = range(1001, 1005)


def cli(*args, cwd=None):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A plate and a finished depth render of it (kept pristine: tests work on copies)."""
    root = tmp_path_factory.mktemp("rendered")
    plate = write_plate(root / "plate", FRAMES)
    out = root / "out"
    run = cli(plate, "-o", out / "shot_depth.####.exr", *TINY)
    assert run.returncode == 0, run.stderr
    return root


@pytest.fixture
def shot(rendered, tmp_path):
    shutil.copytree(rendered / "plate", tmp_path / "plate", copy_function=shutil.copy2)  # times kept
    shutil.copytree(rendered / "out", tmp_path / "out", copy_function=shutil.copy2)
    return str(tmp_path / "plate" / "shot.####.exr"), tmp_path / "out" / "shot_depth.####.exr"


def frame(pattern: Path, n: int) -> Path:
    return Path(str(pattern).replace("####", f"{n:04d}"))


def test_a_plate_copied_with_its_times_is_still_finished(shot):
    plate, out = shot
    run = cli(plate, "-o", out, *TINY, "--dry-run")
    assert run.returncode == 0, run.stderr
    assert "To render: nothing (0 frame(s))" in run.stdout and "Already rendered (skipped): 1001-1004" in run.stdout


@pytest.mark.slow
def test_frames_from_other_settings_stop_the_run_and_name_what_differs(shot):
    plate, out = shot
    before = {n: frame(out, n).stat().st_mtime_ns for n in FRAMES}
    for extra in ([], ["--dry-run"]):
        run = cli(plate, "-o", out, *TINY, "--depth-convention", "distance", *extra)
        assert run.returncode == ExitCode.OUTPUT_CONFLICT, run.stderr
        assert "4 output frame(s) exist from other settings" in run.stderr and "1001-1004" in run.stderr
        assert 'depth_convention: (default) -> "distance"' in run.stderr and "--overwrite" in run.stderr
        assert "usage:" not in run.stderr
    assert {n: frame(out, n).stat().st_mtime_ns for n in FRAMES} == before  # nothing touched
    run = cli(plate, "-o", out, *TINY, "--depth-convention", "distance", "--overwrite")
    assert run.returncode == 0, run.stderr
    assert all(frame(out, n).stat().st_mtime_ns != before[n] for n in FRAMES)


def test_an_edited_plate_frame_is_a_difference(shot):
    plate, out = shot
    os.utime(frame(Path(plate), 1002), (1_000_000_000, 1_000_000_000))
    run = cli(plate, "-o", out, *TINY, "--dry-run")
    assert run.returncode == ExitCode.OUTPUT_CONFLICT
    assert "plate: " in run.stderr


def test_a_finished_frame_with_unreadable_pixels_is_rendered_again(shot):
    plate, out = shot
    path = frame(out, 1003)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 200])  # header intact, pixels cut short
    run = cli(plate, "-o", out, *TINY, "--dry-run")
    assert run.returncode == 0, run.stderr
    assert "To render: 1003 (1 frame(s))" in run.stdout


def test_weights_count_by_content_not_path(tmp_path):
    plate = write_plate(tmp_path / "plate", range(1, 4))
    a, b = tmp_path / "a" / "w.pth", tmp_path / "b" / "other.pth"
    for path in (a, b):
        path.parent.mkdir()
        path.write_bytes(b"same bytes")
    settings = [plan_render(RenderJob(input=plate, passes=("depth",), weights=str(p))).settings for p in (a, b)]
    assert settings[0] == settings[1]
    b.write_bytes(b"retrained")
    assert plan_render(RenderJob(input=plate, passes=("depth",), weights=str(b))).settings != settings[0]


@pytest.mark.parametrize(
    "output",
    [
        "{link}/shot.####.exr",  # the plate's folder through a symlinked folder
        "{link}/../plate/shot.%04d.exr",  # `..`
        "{plate}/shot.#####.exr",  # the same sequence with other padding
        "{plate}/../link/./shot.$F4.exr",  # `..` and `.` into the link, Houdini padding
    ],
)
def test_the_input_is_never_an_output(tmp_path, output):
    plate = write_plate(tmp_path / "plate", range(1001, 1004))
    (tmp_path / "link").symlink_to(tmp_path / "plate")
    target = output.format(link=tmp_path / "link", plate=tmp_path / "plate")
    with pytest.raises(BadArgumentsError, match="overwrite the input|is the input frame"):
        plan_render(RenderJob(input=plate, output=target, weights="random"))
    run = cli(plate, "-o", target, "--weights", "random", "--dry-run")
    assert run.returncode == ExitCode.BAD_ARGUMENTS


def test_an_output_beside_the_plate_with_another_name_is_fine(tmp_path):
    plate = write_plate(tmp_path / "plate", range(1001, 1004))
    (tmp_path / "link").symlink_to(tmp_path / "plate")
    plan = plan_render(RenderJob(input=plate, output=str(tmp_path / "link" / "shot_depth.####.exr"), weights="random"))
    assert plan.to_render == [1001, 1002, 1003]


@pytest.mark.slow
def test_temporaries_left_by_a_killed_render_are_removed_by_the_next_run(shot):
    plate, out = shot
    folder = out.parent
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    stale = folder / f".shot_depth.1002.{dead}.0123abcd.tmp.exr"
    other = folder / f".shot_depth.1009.{dead}.0123abcd.tmp.exr"  # a frame this run does not render
    live = folder / f".shot_depth.1003.{os.getppid()}.0123abcd.tmp.exr"  # a running process's
    for path in (stale, other, live):
        path.write_bytes(b"half a frame")
    frame(out, 1002).unlink()
    frame(out, 1003).unlink()
    run = cli(plate, "-o", out, *TINY)
    assert run.returncode == 0, run.stderr
    assert not stale.exists() and other.exists() and live.exists()
