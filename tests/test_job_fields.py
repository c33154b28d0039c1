"""RenderJob is the one description of a render: a field added to it shows up on the command line,
in farm arguments, in the settings fingerprint and on the wire without any other edit."""

from __future__ import annotations

from pathlib import Path

import pytest
from job_field_copy import copy_with_new_field, run_in
from pipeline_plates import write_plate

from bufferany_core import jobs, protocol
from bufferany_core.errors import BadArgumentsError
from bufferany_core.jobs import RenderJob, job_fields, render_arguments
from bufferany_core.pipeline.cli import build_parser, job_from_args

ROOT = Path(__file__).resolve().parents[1]


def test_a_field_added_to_renderjob_shows_up_everywhere(tmp_path):
    copy = copy_with_new_field(tmp_path)
    plate = tmp_path / "plate"
    plate.mkdir()
    pattern = write_plate(plate, range(1, 5), name="shot")
    found = run_in(
        copy,
        f"""
        import json
        import bufferany_core
        from bufferany_core import protocol
        from bufferany_core.errors import BadArgumentsError
        from bufferany_core.jobs import RenderJob, render_arguments
        from bufferany_core.jobs import render_arguments
        from bufferany_core.pipeline.cli import build_parser, job_from_args
        from bufferany_core.pipeline.render import plan_render

        assert bufferany_core.__file__.startswith({str(copy)!r})  # the copy, not the checkout
        job = RenderJob(input={pattern!r}, passes=("depth",), depth_model="video-depth-anything-tiny", sharpen=3)
        args = render_arguments(job)
        try:
            protocol.job_from_wire({{"input": "/a.exr", "sharpen": "3"}})
            wrong_type = None
        except BadArgumentsError as exc:
            wrong_type = str(exc)
        plain = RenderJob(input={pattern!r}, passes=("depth",), depth_model="video-depth-anything-tiny")
        print(json.dumps({{
            "help": build_parser().format_help(),
            "args": args,
            "parsed_back": job_from_args(build_parser().parse_args(args)) == job,
            "wire": protocol.job_from_wire(protocol.job_to_wire(job)).sharpen,
            "wrong_type": wrong_type,
            "fingerprints": [plan_render(j).settings for j in (plain, job)],
            "fingerprint_default": plan_render(RenderJob(**{{**plain.to_dict(), "sharpen": None}})).settings,
        }}))
        """,
    )
    assert "--sharpen SHARPEN" in found["help"] and "test field" in found["help"]
    assert found["args"][-2:] == ["--sharpen", "3"]
    assert found["parsed_back"]
    assert found["wire"] == 3
    assert "job field 'sharpen' has the wrong type" in found["wrong_type"]
    plain, sharpened = found["fingerprints"]
    assert plain != sharpened  # a pixel field re-renders when it changes ...
    assert found["fingerprint_default"] == plain  # ... and at its default leaves earlier renders valid


def test_every_field_round_trips_through_the_cli_the_farm_and_the_wire():
    values = {"text": "/x", "int": 3, "flag": True, "passes": ("normal",)}  # absolute: paths stay as they are
    job = RenderJob(
        input="/shots/a.####.exr",
        **{
            f.name: spec.choices[-1] if spec.kind == "choice" else values[spec.kind]
            for f, spec in job_fields()
            if spec.flag is not None
        },
    )
    assert set(job.changed_fields()) == {f.name for f, _ in job_fields()}  # every field is exercised
    assert job_from_args(build_parser().parse_args(render_arguments(job))) == job
    assert protocol.job_from_wire(protocol.job_to_wire(job, cwd="/")) == job


def test_processing_size_is_a_shorthand_for_both_passes_and_each_can_differ():
    parse = build_parser().parse_args
    both = job_from_args(parse(["/a.exr", "--processing-size", "252"]))
    assert (both.depth_processing_size, both.normal_processing_size) == (252, 252)
    one = job_from_args(parse(["/a.exr", "--processing-size", "252", "--normal-processing-size", "768"]))
    assert (one.depth_processing_size, one.normal_processing_size) == (252, 768)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"window": 0}, "'window' must be at least 1"),
        ({"overlap": -1}, "'overlap' must be at least 0"),
        ({"stabilize": 1}, "'stabilize' has the wrong type"),
        ({"passes": ("depth", "depth")}, "'passes' must be a non-empty subset"),
        ({"depth_convention": "z"}, "'depth_convention' must be one of inverse, distance"),
    ],
)
def test_bad_field_values_name_the_field(changes, message):
    with pytest.raises(BadArgumentsError, match=message):
        RenderJob(input="/a.exr", **changes)


def test_the_documented_field_table_is_the_code():
    assert jobs.fields_markdown() in (ROOT / "docs" / "jobs.md").read_text()
