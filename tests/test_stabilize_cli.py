"""`bufferany-stabilize` end to end on real EXR sequences (OpenImageIO), as a subprocess and in
process; its results against a render's own stabiliser on a real render of tiny random-weight models."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from frames_util import write_image
from pipeline_plates import TINY, write_plate

from bufferany_core.conventions import DEPTH_CHANNEL, HEADER, NORMAL_CHANNELS
from bufferany_core.errors import ExitCode
from bufferany_core.frames import DISPLAY_COLORSPACE, read_channels, read_info
from bufferany_core.jobs import RenderJob
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.render import run_render
from bufferany_core.pipeline.stabilizing import stabilizer_settings
from bufferany_core.stabilize.cli import main
from bufferany_core.testing.procedural_shot import (
    add_depth_flicker,
    add_normal_flicker,
    depth_scores,
    procedural_shot,
)

FRAMES = range(1001, 1011)
ORIGIN = (10, 5)  # data window offset inside a larger display window (overscan-style)
DISPLAY = (0, 0, 96, 64)


@pytest.fixture(scope="module")
def shot_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shot")
    shot = procedural_shot(frames=len(FRAMES), height=48, width=64)
    depth = add_depth_flicker(shot.inverse_depth, seed=4)
    normals = add_normal_flicker(shot.normals, seed=5)
    camera = {"camera": ("string", "A001"), "FramesPerSecond": ("rational2i", (24, 1))}
    for index, frame in enumerate(FRAMES):
        plate = shot.plate[index].transpose(1, 2, 0)
        write_image(
            folder / f"plate.{frame}.exr",
            plate,
            fmt="half",
            origin=ORIGIN,
            display=DISPLAY,
            attributes=camera,
        )
        write_image(
            folder / f"cattery.{frame}.exr",
            depth[index].transpose(1, 2, 0),
            ("Y",),
            fmt="float",
            origin=ORIGIN,
        )
        write_image(
            folder / f"normals.{frame}.exr", normals[index].transpose(1, 2, 0), NORMAL_CHANNELS, fmt="float"
        )
    return folder, shot, depth


def _read_pass(pattern: Path, names, frames=FRAMES) -> np.ndarray:
    return np.stack([read_channels(str(pattern).replace("####", str(f)), names) for f in frames]).transpose(
        0, 3, 1, 2
    )


def test_cli_stabilises_depth_and_normals_keeping_the_plate_geometry(shot_files, tmp_path):
    folder, shot, depth = shot_files
    output = tmp_path / "out" / "stable.####.exr"
    command = [
        str(Path(sys.executable).with_name("bufferany-stabilize")),
        "--plate", str(folder / "plate.####.exr"),
        "--depth", str(folder / "cattery.####.exr"),
        "--depth-channel", "Y",
        "--normal", str(folder / "normals.####.exr"),
        "--colorspace", DISPLAY_COLORSPACE,
        "--flow", "dis",
        "-o", str(output),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert result.returncode == 0, result.stderr
    assert "Progress: 100%" in result.stdout and result.stdout.count(" written: ") == len(FRAMES)

    info = read_info(str(output).replace("####", "1005"))
    assert info.data_window == (*ORIGIN, 64, 48) and info.display_window == DISPLAY
    assert set(info.channels) == {DEPTH_CHANNEL, *NORMAL_CHANNELS}
    assert info.metadata["camera"] == "A001" and info.metadata[HEADER.stabilized] == 1
    assert info.metadata[HEADER.passes] == "depth,normal" and info.metadata[HEADER.frame_range] == "1001-1010"

    stable = _read_pass(output, [DEPTH_CHANNEL])
    assert depth_scores(stable, shot.inverse_depth)[0] < 0.5 * depth_scores(depth, shot.inverse_depth)[0]
    normals = _read_pass(output, list(NORMAL_CHANNELS))
    assert np.allclose(np.linalg.norm(normals, axis=1), 1.0, atol=2e-3)  # half precision


def _args(folder, tmp_path, *extra):
    return [
        "--plate",
        str(folder / "plate.####.exr"),
        "--colorspace",
        DISPLAY_COLORSPACE,
        "--flow",
        "dis",
        "-o",
        str(tmp_path / "o.####.exr"),
        *extra,
    ]


def test_frame_subset(shot_files, tmp_path):
    folder, shot, _ = shot_files
    args = _args(folder, tmp_path, "--depth", str(folder / "cattery.####.exr"), "--depth-channel", "Y")
    assert main([*args, "--frames", "1002-1009"]) == ExitCode.OK
    written = sorted(p.name for p in tmp_path.glob("o.*.exr"))
    assert written == [f"o.{f}.exr" for f in range(1002, 1010)]
    stable = _read_pass(tmp_path / "o.####.exr", [DEPTH_CHANNEL], range(1002, 1010))
    assert np.isfinite(stable).all() and stable.std() > 0


@pytest.mark.parametrize(
    "extra,code,message",
    [
        ((), ExitCode.BAD_ARGUMENTS, "nothing to stabilise"),
        (
            ("--depth", "{folder}/cattery.####.exr"),
            ExitCode.UNREADABLE_IMAGE,
            "depth.Z",
        ),  # default channel absent
        (
            ("--depth", "{folder}/cattery.####.exr", "--depth-channel", "Y", "--frames", "1001-1020"),
            ExitCode.FRAME_RANGE,
            "1011-1020",
        ),
        (("--depth", "{folder}/nothing.####.exr"), ExitCode.INPUT_NOT_FOUND, "nothing"),
        (
            ("--normal", "{folder}/normals.####.exr", "--normal-channels", "N.X,N.Y"),
            ExitCode.BAD_ARGUMENTS,
            "three",
        ),
        (
            (
                "--depth",
                "{folder}/cattery.####.exr",
                "--depth-channel",
                "Y",
                "-o",
                "{folder}/cattery.####.exr",
            ),
            ExitCode.BAD_ARGUMENTS,
            "would overwrite the input",
        ),
        (  # a setting of the recursive filter the command ran before the render's stabiliser
            ("--depth", "{folder}/cattery.####.exr", "--depth-channel", "Y", "--decay", "0.8"),
            ExitCode.BAD_ARGUMENTS,
            "drop --decay",
        ),
    ],
)
def test_bad_input_exits_with_its_code_and_names_the_culprit(
    shot_files, tmp_path, capsys, extra, code, message
):
    folder, _, _ = shot_files
    extra = [e.format(folder=folder) for e in extra]
    assert main(_args(folder, tmp_path, *extra)) == code
    assert message in capsys.readouterr().err
    assert not list(tmp_path.glob("o.*.exr"))


def test_missing_pass_frame_and_wrong_size_and_nan(tmp_path, shot_files, capsys):
    folder, _, _ = shot_files
    broken = tmp_path / "broken"
    broken.mkdir()
    for frame in FRAMES:
        if frame != 1004:
            write_image(broken / f"gap.{frame}.exr", np.ones((48, 64, 1), np.float32), ("Y",), fmt="float")
        small = np.ones((40, 64, 1), np.float32)
        write_image(broken / f"small.{frame}.exr", small, ("Y",), fmt="float")
        nan = np.ones((48, 64, 1), np.float32)
        nan[3, 3] = np.nan if frame == 1007 else 1.0
        write_image(broken / f"nan.{frame}.exr", nan, ("Y",), fmt="float")
    for name, code, text in (
        ("gap", ExitCode.MISSING_FRAMES, "1004"),
        ("small", ExitCode.MIXED_RESOLUTION, "64x40"),
        ("nan", ExitCode.NON_FINITE, "nan.1007.exr"),
    ):
        out = tmp_path / name
        rc = main(
            [
                "--plate",
                str(folder / "plate.####.exr"),
                "--depth",
                str(broken / f"{name}.####.exr"),
                "--depth-channel",
                "Y",
                "--flow",
                "dis",
                "-o",
                str(out / "o.####.exr"),
            ]
        )
        assert rc == code, name
        assert text in capsys.readouterr().err
    assert not list((tmp_path / "gap").glob("*.exr"))


def test_raft_without_weights_exits_with_missing_weights(shot_files, tmp_path, capsys, monkeypatch):
    folder, _, _ = shot_files
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("BUFFERANY_MODELS", str(tmp_path / "models"))
    args = _args(
        folder,
        tmp_path,
        "--depth",
        str(folder / "cattery.####.exr"),
        "--depth-channel",
        "Y",
        "--flow",
        "raft-small",
    )
    assert main(args) == ExitCode.MISSING_WEIGHTS
    assert "raft_small_C_T_V2-01064c6d.pth" in capsys.readouterr().err


def _angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Degrees between normals (..., 3, H, W)."""
    cosine = (a * b).sum(-3) / (np.linalg.norm(a, axis=-3) * np.linalg.norm(b, axis=-3))
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


@pytest.mark.slow
def test_stabilising_a_renders_passes_writes_what_the_render_stabilised(tmp_path):
    """A render's unstabilised passes through bufferany-stabilize equal the same render with
    --stabilize on (same flows on square pixels: a 2:1 plate; same alignment windows: 30 frames, two).
    Depth is stored as float: measured bit-identical. Normals are stored as half, so the command reads
    them rounded and the stabiliser's robust weights move a little: measured 99th percentile 0.12-0.13
    degrees, at most 1.1-1.4 degrees at a few pixels of one frame (with float-stored normals: within one
    half step)."""
    shot = range(1, 31)
    plate = write_plate(tmp_path / "plate", shot, pixel_aspect=2.0)
    predictors = PredictorCache()
    patterns = {mode: str(tmp_path / mode / "shot.####.exr") for mode in ("off", "on")}
    for mode, pattern in patterns.items():
        run_render(RenderJob(input=plate, output=pattern, stabilize=mode, **TINY), predictors=predictors)
    stabilised = str(tmp_path / "cli" / "shot.####.exr")
    raw = patterns["off"]
    assert main(["--plate", plate, "--depth", raw, "--normal", raw, "-o", stabilised]) == ExitCode.OK

    frames = [f"{n:04d}" for n in shot]
    ours, render, before = (_read_pass(Path(p), [DEPTH_CHANNEL, *NORMAL_CHANNELS], frames) for p in (stabilised, patterns["on"], raw))
    spread = np.ptp(render[:, 0])
    np.testing.assert_allclose(ours[:, 0], render[:, 0], rtol=0, atol=1e-6 * spread)
    angles = _angles(ours[:, 1:], render[:, 1:])
    assert np.percentile(angles, 99) < 0.25 and angles.max() < 2.0
    # what the stabiliser itself changes, for scale: far beyond those differences
    assert np.abs(render[:, 0] - before[:, 0]).max() > 0.05 * spread
    assert np.percentile(_angles(render[:, 1:], before[:, 1:]), 99) > 10 * 0.25

    header = read_info(stabilised.replace("####", "0015")).metadata
    rendered = read_info(patterns["on"].replace("####", "0015")).metadata
    assert header[HEADER.pass_stabilized("depth")] == 1 and header[HEADER.pass_stabilized("normal")] == 1
    assert header[HEADER.weights_sha256] == rendered[HEADER.weights_sha256]  # the render's provenance kept
    values = json.loads(header[HEADER.settings_values])
    assert values["stabilizer"] == stabilizer_settings() and values.pop("stabilized_by") == "bufferany-stabilize"
    assert values.pop("stabilized_shot") == [1, 30, 30]
    assert values == json.loads(rendered[HEADER.settings_values])  # the render's settings, the stabiliser's included
    assert header[HEADER.settings] != rendered[HEADER.settings]  # equal only to rounding: never the render's frames
