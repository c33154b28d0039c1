"""Farm job descriptions and chunk arguments of `bufferany-render` (no model needed)."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_plates import write_plate

from bufferany_core.errors import ExitCode
from bufferany_core.jobs import RenderJob, render_arguments
from bufferany_core.pipeline.cli import build_parser, job_from_args, main
from bufferany_core.pipeline.render import plan_render
from bufferany_core.testing.farm_tokens import expand_tokens, split_deadline_arguments

CLI = [sys.executable, "-m", "bufferany_core.pipeline.cli"]


def cli(*args, cwd=None):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_render_arguments_parse_back_into_the_same_job():
    job = RenderJob(
        input="/shots/a b/plate.####.exr",
        output="/out/x.####.exr",
        frames="1001-1010",
        shot_range="1001-1240",
        passes=("depth",),
        depth_model="video-depth-anything-tiny",
        weights="random:3",
        depth_temporal_weights="/runs/r1/temporal.safetensors",
        device="cpu",
        depth_convention="distance",
        stabilize="on",
        include_plate=True,
        window=12, overlap=4, depth_processing_size=56, normal_processing_size=56,
    )
    parsed = job_from_args(build_parser().parse_args(render_arguments(job)))
    assert parsed == job


def test_tokens_expand_as_the_farms_do():
    assert expand_tokens("--frames <STARTFRAME>-<ENDFRAME> f<STARTFRAME%4>", 7, 12) == "--frames 7-12 f0007"
    assert expand_tokens("#FRAME_START#-#FRAME_END# #ZFRAME# #FRAME_CHUNK# #IFRAME#", 1021, 1030, chunk=10) == (
        "1021-1030 1021 10 1021"
    )


def test_opencue_last_chunk_overshoot_is_clamped_to_the_shot(tmp_path):
    pattern = write_plate(tmp_path / "plate", range(1001, 1025))
    run = cli(pattern, "--weights", "random", "--opencue-cmd")
    assert run.returncode == 0, run.stderr
    command = run.stdout.strip()
    assert "'#FRAME_START#-#FRAME_END#'" in command and "--shot-range 1001-1024" in command
    args = shlex.split(expand_tokens(command, 1021, 1030))
    job = job_from_args(build_parser().parse_args(args[args.index(pattern) :]))
    plan = plan_render(job)
    assert plan.requested == [1021, 1022, 1023, 1024] and plan.dropped == list(range(1025, 1031))
    assert plan.shot == list(range(1001, 1025))


def test_unexpanded_token_is_a_bad_argument(tmp_path):
    pattern = write_plate(tmp_path / "plate", range(1, 4))
    run = cli(pattern, "--frames", "<STARTFRAME>-<ENDFRAME>", "--dry-run")
    assert run.returncode == ExitCode.BAD_ARGUMENTS
    assert "<STARTFRAME>" in run.stderr and "farm" in run.stderr


def test_deadline_job_files(tmp_path):
    pattern = write_plate(tmp_path / "plate", range(1001, 1011))
    run = cli(pattern, "--weights", "random", "--deadline-job", tmp_path / "dl", "--chunk-size", 4)
    assert run.returncode == 0, run.stderr
    job_info = dict(line.split("=", 1) for line in (tmp_path / "dl" / "job_info.job").read_text().splitlines())
    plugin = dict(line.split("=", 1) for line in (tmp_path / "dl" / "plugin_info.job").read_text().splitlines())
    assert job_info["Plugin"] == "CommandLine" and job_info["Frames"] == "1001-1010" and job_info["ChunkSize"] == "4"
    assert job_info["OutputFilename0"] == "shot_buffers.####.exr"
    assert "--frames <STARTFRAME>-<ENDFRAME>" in plugin["Arguments"]
    assert "--shot-range 1001-1010" in plugin["Arguments"]
    # What Deadline runs for the task 1009-1010 is a valid render command for those frames.
    expanded = expand_tokens(plugin["Arguments"], 1009, 1010)
    args = split_deadline_arguments(expanded)
    job = job_from_args(build_parser().parse_args(args[args.index(pattern) :]))
    assert plan_render(job).requested == [1009, 1010]
    assert Path(plugin["Executable"]).name in ("bufferany-render", Path(sys.executable).name)
    assert "deadlinecommand" in run.stdout


def test_dry_run_lists_frames_and_renders_nothing(tmp_path):
    pattern = write_plate(tmp_path / "plate", range(1, 41))
    run = cli(pattern, "--frames", "5-30", "--shot-range", "1-40", "--dry-run")
    assert run.returncode == 0, run.stderr
    assert "To render: 5-30 (26 frame(s))" in run.stdout
    assert not list((tmp_path / "plate").glob("*_buffers*"))


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["{plate}/nothing.####.exr"], ExitCode.INPUT_NOT_FOUND, "nothing.####.exr"),
        (["{pattern}", "--frames", "1-x"], ExitCode.BAD_ARGUMENTS, "1-x"),
        (["{pattern}", "--frames", "1-50"], ExitCode.FRAME_RANGE, "outside"),
        (["{pattern}", "--frames", "1-10", "--shot-range", "1-8"], ExitCode.OK, ""),
        (["{pattern}", "--frames", "20-30", "--shot-range", "1-8"], ExitCode.FRAME_RANGE, "shot range"),
        (["{pattern}", "--window", "8", "--overlap", "5"], ExitCode.BAD_ARGUMENTS, "--overlap 5"),
        (["{pattern}", "--passes", "depth,albedo"], ExitCode.BAD_ARGUMENTS, "albedo"),
        (["{pattern}", "-o", "{plate}/out.####.mov"], ExitCode.BAD_ARGUMENTS, "movie"),
        (["{pattern}", "-o", "{pattern}"], ExitCode.BAD_ARGUMENTS, "would overwrite the input"),
        (["{pattern}", "--weights", "/w.pth"], ExitCode.BAD_ARGUMENTS, "one pass"),
    ],
)
def test_bad_arguments_exit_with_their_code(tmp_path, capsys, args, code, says):
    pattern = write_plate(tmp_path / "plate", range(1, 11))
    filled = [a.format(plate=tmp_path / "plate", pattern=pattern) for a in args]
    assert main(filled + ["--dry-run"]) == code
    assert says in capsys.readouterr().err


def test_missing_frames_are_named(tmp_path, capsys):
    pattern = write_plate(tmp_path / "plate", [1, 2, 3, 5, 6])
    assert main([pattern, "--dry-run"]) == ExitCode.MISSING_FRAMES
    assert "1 frame(s) missing" in capsys.readouterr().err
