"""Rendering through the plugins: a manifest folder whose passes do not exist yet is rendered by
`bufferany-render` (tiny model, random weights) before validation and published; a frame lost later
is flagged, rendered again by the repair action with the shot's scale, and published as v002; the
service renders the same way; a lossy file is rewritten losslessly by its action."""

from __future__ import annotations

import json
import sys

import numpy as np
import pyblish.api
import pyblish.plugin
import pytest
from pipeline_plates import write_plate
from pyblish_support import (
    discover_plugins,
    errors,
    make_shot,
    passes_file,
    publish,
    recompress,
    reset_pyblish,
)
from service_support import ServerProcess

from bufferany_core import conventions
from bufferany_core.conventions import HEADER
from bufferany_core.errors import (
    BadArgumentsError,
    ExitCode,
    MissingFramesError,
    ServiceError,
    error_class_for,
    error_for_exit_code,
)
from bufferany_core.frames import read_channels, read_info
from bufferany_core.publish import checks
from bufferany_core.publish.actions import RenderMissingFrames, RewriteLossless
from bufferany_core.publish.render_missing import job_for

SHOT = range(1001, 1007)
TINY_JOB = {
    "depth_model": "video-depth-anything-tiny",
    "normal_model": "buffer-anytime-normal-tiny",
    "weights": "random",
    "device": "cpu",
    "window": 8, "overlap": 2, "depth_processing_size": 28, "normal_processing_size": 28,
}
CLI = [sys.executable, "-m", "bufferany_core.pipeline.cli"]


@pytest.fixture
def plugins(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # small shared test machines
    yield discover_plugins()
    reset_pyblish()


def plugin_named(plugins, name):
    return next(plugin for plugin in plugins if plugin.__name__ == name)


def write_manifest(folder, **defaults):
    manifest = {
        "defaults": {
            "renderJob": TINY_JOB,
            "renderCommand": CLI,
            "allowUntrained": True,
            "flickerThreshold": 100,
            **defaults,
        },
        "shots": [
            {
                "name": "sh010",
                "plate": "plates/shot.####.exr",
                "output": "buffers/sh010_buffers.####.exr",
                "frames": f"{SHOT[0]}-{SHOT[-1]}",
            }
        ],
    }
    (folder / "bufferany_publish.json").write_text(json.dumps(manifest))


@pytest.mark.slow
def test_cli_renders_missing_passes_then_the_action_repairs_a_lost_frame(plugins, tmp_path):
    folder = tmp_path / "shots"
    write_plate(folder / "plates", SHOT)
    write_manifest(folder, render="cli")
    root = tmp_path / "publish"

    context = publish(plugins, folder, root)
    assert errors(context) == {}
    v001 = root / "sh010" / "v001"
    for frame in SHOT:
        info = read_info(v001 / f"sh010_buffers.{frame}.exr")
        assert {conventions.DEPTH_CHANNEL, *conventions.NORMAL_CHANNELS} <= set(info.channels)
        assert info.metadata[HEADER.untrained] == 1
    lost = folder / "buffers" / "sh010_buffers.1004.exr"
    lost.unlink()

    write_manifest(folder)  # validate only: the lost frame must be flagged, not silently rendered
    context = publish(plugins, folder, root)
    assert "1 of 6 frame(s)" in errors(context)["ValidateBufferanyFrames"]
    assert "missing: 1004" in errors(context)["ValidateBufferanyFrames"]
    result = pyblish.plugin.process(
        plugin_named(plugins, "ValidateBufferanyFrames"), context, None, action=RenderMissingFrames.id
    )
    assert result["success"], result["error"]
    assert errors(publish(plugins, folder, root)) == {}
    # Rendered alone with the whole shot as its range, the frame keeps the shot's scale and shift.
    before = read_channels(v001 / "sh010_buffers.1004.exr", [conventions.DEPTH_CHANNEL])
    after = read_channels(root / "sh010" / "v002" / "sh010_buffers.1004.exr", [conventions.DEPTH_CHANNEL])
    assert np.abs(before - after).max() < 0.01 * (before.max() - before.min())


@pytest.mark.slow
def test_service_renders_missing_passes(plugins, tmp_path):
    folder = tmp_path / "shots"
    write_plate(folder / "plates", SHOT)
    server = ServerProcess(tmp_path, timeout=60)
    try:
        write_manifest(folder, render="service", discovery=str(server.discovery))
        context = publish(plugins, folder, tmp_path / "publish")
    finally:
        server.stop()
    assert errors(context) == {}
    assert (tmp_path / "publish" / "sh010" / "v001" / "sh010_buffers.1006.exr").is_file()
    (instance,) = list(context)
    assert instance.data["renderResult"]["frames_written"] == list(SHOT)


@pytest.mark.slow
def test_failed_cli_render_reports_the_cli_error(plugins, tmp_path):
    folder = tmp_path / "shots"
    write_plate(folder / "plates", SHOT)
    write_manifest(folder, render="cli", renderJob={**TINY_JOB, "depth_model": "no-such-model"})
    failed = errors(publish(plugins, folder, tmp_path / "publish"))
    assert set(failed) == {"ExtractBufferanyMissingPasses", "ValidateBufferanyFrames"}
    assert (
        "failed (exit code 2) rendering frames 1001,1002,1003,1004,1005,1006"
        in failed["ExtractBufferanyMissingPasses"]
    )
    assert "no-such-model" in failed["ExtractBufferanyMissingPasses"]


def test_rewrite_lossless_action_repairs_compression(plugins, tmp_path):
    shot = make_shot(tmp_path / "shot")
    for frame in (1002, 1005):
        recompress(passes_file(shot, frame), "dwaa")
    lossy = read_channels(passes_file(shot, 1002), ["depth.Z", "N.X", "N.Y", "N.Z"])  # DWA changed N.*
    context = publish(plugins, shot, tmp_path / "publish")
    assert (
        "shot_buffers.1002.exr ... shot_buffers.1005.exr (frames 1002,1005)"
        in errors(context)["ValidateBufferanyCompression"]
    )
    result = pyblish.plugin.process(
        plugin_named(plugins, "ValidateBufferanyCompression"), context, None, action=RewriteLossless.id
    )
    assert result["success"], result["error"]
    assert checks.compression_of(passes_file(shot, 1005)) == conventions.DEFAULT_COMPRESSION
    info = read_info(passes_file(shot, 1002))
    assert dict(zip(info.channels, info.channel_formats, strict=True)) == {
        "depth.Z": "float",
        "N.X": "half",
        "N.Y": "half",
        "N.Z": "half",
    }
    np.testing.assert_array_equal(
        read_channels(passes_file(shot, 1002), ["depth.Z", "N.X", "N.Y", "N.Z"]), lossy
    )
    assert errors(publish(plugins, shot, tmp_path / "publish")) == {}


def test_render_job_spans_the_shot_and_keeps_the_instance_paths(tmp_path):
    context = pyblish.api.Context()
    context.data["renderJob"] = {"weights": "random:5", "device": "cpu"}
    instance = context.create_instance(
        "sh010",
        plate="/p/sh010.####.exr",
        output="/o/sh010_buffers.####.exr",
        frameStart=1001,
        frameEnd=1100,
        passes=["normal"],
        renderJob={"depth_convention": "distance"},
    )
    job = job_for(instance, [1003, 1050], overwrite=True, changes={"stabilize": "on"})
    assert (job.input, job.output, job.frames, job.shot_range) == (
        "/p/sh010.####.exr",
        "/o/sh010_buffers.####.exr",
        "1003,1050",
        "1001-1100",
    )
    assert job.passes == ("normal",) and job.overwrite and job.stabilize == "on"
    assert (job.depth_convention, job.weights, job.device) == ("distance", "random:5", "cpu")
    instance.data["renderJob"] = {"frames": "1-5"}
    with pytest.raises(BadArgumentsError, match="renderJob must not set frames"):
        job_for(instance, [1001])


def test_cli_exit_codes_map_to_the_project_errors():
    assert error_class_for(4) is MissingFramesError
    assert error_class_for(14) is ServiceError
    assert error_class_for(99).__name__ == "BufferanyError"
    error = error_for_exit_code(4, "frames 3-4 missing")
    assert isinstance(error, MissingFramesError) and str(error) == "frames 3-4 missing"
    assert error_for_exit_code(99, "?").exit_code == ExitCode.INTERNAL
