"""`--stabilize auto|on|off`: which passes the stabiliser runs on, said the same way by the CLI, the dry
run, the wire, the service's events and the output header."""

from __future__ import annotations

import pytest
from pipeline_plates import write_plate

from bufferany_core import protocol
from bufferany_core.conventions import HEADER
from bufferany_core.errors import BadArgumentsError
from bufferany_core.frames import read_info
from bufferany_core.jobs import RenderJob, render_arguments
from bufferany_core.models.catalog import get_model_entry
from bufferany_core.pipeline.cli import build_parser, job_from_args, main
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.render import plan_render, run_render
from bufferany_core.pipeline.stabilizing import decide


def parse(args: list[str]) -> RenderJob:
    return job_from_args(build_parser().parse_args(args))


def test_bare_flag_means_on_and_the_default_is_auto():
    assert parse(["/a.exr"]).stabilize == "auto"
    assert parse(["/a.exr", "--stabilize"]).stabilize == "on"
    assert parse(["/a.exr", "--stabilize", "off"]).stabilize == "off"
    assert parse(["/a.exr", "--stabilize", "--passes", "depth"]).stabilize == "on"
    with pytest.raises(SystemExit):
        parse(["/a.exr", "--stabilize", "sometimes"])
    with pytest.raises(SystemExit):  # a bare --stabilize right before the plate takes it as its value (README)
        parse(["--stabilize", "/a.exr"])


@pytest.mark.parametrize("mode", ["auto", "on", "off"])
def test_farm_arguments_round_trip_every_mode(mode):
    job = RenderJob(input="/shots/plate.####.exr", stabilize=mode, passes=("normal",))
    assert parse(render_arguments(job)) == job
    assert ("--stabilize" in render_arguments(job)) == (mode != "auto")


def test_old_clients_booleans_mean_on_and_off_and_other_types_are_refused():
    assert protocol.job_from_wire({"input": "/a.exr", "stabilize": True}).stabilize == "on"
    assert protocol.job_from_wire({"input": "/a.exr", "stabilize": False}).stabilize == "off"
    assert RenderJob(input="/a.exr", stabilize=True).stabilize == "on"  # Python callers of the old field
    for bad, says in ((1, "wrong type"), ("yes", "must be one of auto, on, off")):
        with pytest.raises(BadArgumentsError, match=says):
            protocol.job_from_wire({"input": "/a.exr", "stabilize": bad})


@pytest.mark.parametrize(
    ("pass_name", "model", "changes", "stabilised", "why"),
    [
        ("depth", "video-depth-anything-small", {}, False, "has trained temporal layers"),
        ("depth", "depth-anything-v2-small", {}, True, "is an image model"),
        ("depth", "buffer-anytime-depth-small", {}, True, "untrained temporal layers"),
        ("depth", "buffer-anytime-depth-small", {"depth_temporal_weights": "/t.safetensors"}, False, "trained temporal weights"),
        ("normal", "buffer-anytime-normal", {}, True, "no --normal-temporal-weights"),
        ("normal", "marigold-e2e-ft-normals", {}, True, "image model"),
        ("normal", "buffer-anytime-normal", {"normal_temporal_weights": "/t.safetensors"}, False, "trained temporal"),
        ("depth", "video-depth-anything-small", {"stabilize": "on"}, True, "--stabilize on"),
        ("normal", "marigold-e2e-ft-normals", {"stabilize": "off"}, False, "--stabilize off"),
    ],
)
def test_auto_stabilises_passes_without_trained_temporal_layers(pass_name, model, changes, stabilised, why):
    job = RenderJob(input="/a.exr", passes=(pass_name,), **{f"{pass_name}_model": model}, **changes)
    choice = decide(job, {pass_name: get_model_entry(pass_name, model)})[pass_name]
    assert choice.stabilize is stabilised and why in choice.reason


def test_dry_run_says_per_pass_what_the_stabiliser_does(tmp_path, capsys):
    pattern = write_plate(tmp_path / "plate", range(1, 9))
    assert main([pattern, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "Stabiliser, depth: not stabilised (auto: video-depth-anything-small has trained temporal layers)" in out
    assert "Stabiliser, normal: stabilised (auto: buffer-anytime-normal has untrained temporal layers" in out
    assert main([pattern, "--dry-run", "--stabilize"]) == 0
    assert "Stabiliser, depth: stabilised (--stabilize on)" in capsys.readouterr().out


def test_the_fingerprint_records_what_is_stabilised_not_how_it_was_asked(tmp_path):
    pattern = write_plate(tmp_path / "plate", range(1, 5))
    depth_only = dict(input=pattern, passes=("depth",))
    # auto leaves Video Depth Anything alone: the same pixels as off, so the same fingerprint
    assert plan_render(RenderJob(**depth_only)).settings == plan_render(RenderJob(**depth_only, stabilize="off")).settings
    assert plan_render(RenderJob(**depth_only)).settings != plan_render(RenderJob(**depth_only, stabilize="on")).settings


def test_frames_stabilised_by_an_earlier_algorithm_are_not_counted_finished(tmp_path, monkeypatch):
    """The fingerprint of a stabilised render holds the stabiliser's algorithm and settings: a resume
    after an upgrade renders again what the earlier stabiliser wrote."""
    from bufferany_core.pipeline import stabilizing

    job = RenderJob(input=write_plate(tmp_path / "plate", range(1, 5)), passes=("depth",), stabilize="on")
    now = plan_render(job)
    assert now.settings_values["stabilizer"] == stabilizing.stabilizer_settings()
    monkeypatch.setattr(stabilizing, "STABILIZER_ALGORITHM", stabilizing.STABILIZER_ALGORITHM - 1)
    assert plan_render(job).settings != now.settings


def test_the_header_and_the_events_say_per_pass_whether_and_why(tmp_path):
    pattern = write_plate(tmp_path / "plate", range(1, 7))
    job = RenderJob(
        input=pattern, depth_model="video-depth-anything-tiny", normal_model="buffer-anytime-normal-tiny",
        weights="random", device="cpu", window=6, overlap=2, depth_processing_size=28, normal_processing_size=28,
    )
    events: list[dict] = []
    result = run_render(job, on_event=events.append, predictors=PredictorCache())
    started = events[0]
    assert started["stabilized"]["depth"] == {"stabilized": False, "reason": "auto: video-depth-anything-tiny has trained temporal layers"}
    assert started["stabilized"]["normal"]["stabilized"] is True
    assert result.to_dict()["stabilized"] == started["stabilized"]
    meta = read_info(tmp_path / "plate" / "shot_buffers.0003.exr").metadata
    assert meta[HEADER.stabilized] == 1 and meta[HEADER.stabilize_mode] == "auto"
    assert meta[HEADER.pass_stabilized("depth")] == 0 and meta[HEADER.pass_stabilized("normal")] == 1
    assert "trained temporal layers" in meta[HEADER.pass_stabilize_reason("depth")]
    assert "buffer-anytime-normal-tiny" in meta[HEADER.pass_stabilize_reason("normal")]
