"""The wire format shared by client and server: framing, limits and request validation."""

from __future__ import annotations

import os

import pytest

from bufferany_core import protocol
from bufferany_core.errors import BadArgumentsError
from bufferany_core.jobs import RenderJob
from bufferany_core.protocol import ProtocolError


def test_frames_round_trip_unicode_and_refuse_oversized_messages():
    message = {"type": "status", "id": 7, "note": "plate_\u00e9t\u00e9 \u2013 \U0001f3ac"}
    frame = protocol.encode(message)
    assert protocol.body_length(frame[:4]) == len(frame) - 4
    assert protocol.decode(frame[4:]) == message
    with pytest.raises(ProtocolError, match="over the limit") as info:
        protocol.encode({"type": "x", "blob": "a" * protocol.MAX_MESSAGE_BYTES})
    assert info.value.code == "too_large"
    with pytest.raises(ProtocolError, match="over the limit"):
        protocol.body_length(protocol.HEADER.pack(protocol.MAX_MESSAGE_BYTES + 1))
    with pytest.raises(ProtocolError, match="empty message"):
        protocol.body_length(b"\x00\x00\x00\x00")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b'{"type": "status"', "not valid JSON"),
        (b'{"a": NaN}', "not valid JSON"),
        (b"[1, 2]", "must be a JSON object, got list"),
        (b"[" * 100_000, "nested too deeply|not valid JSON"),
    ],
)
def test_decode_rejects_what_is_not_one_json_object(body, expected):
    with pytest.raises(ProtocolError, match=expected) as info:
        protocol.decode(body)
    assert info.value.code == "bad_message"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ({"type": "launch", "id": 1}, "unknown request type 'launch'"),
        ({"type": "status"}, "field 'id' must be"),
        ({"type": "status", "id": True}, "field 'id' must be"),
        ({"type": "status", "id": "x" * 65}, "field 'id' must be"),
        ({"type": "cancel", "id": 1}, "cancel: missing field 'job_id'"),
        ({"type": "cancel", "id": 1, "job_id": 5}, "field 'job_id' must be str, got int"),
        (
            {"type": "hello", "id": 1, "token": "t", "protocol": True},
            "field 'protocol' must be int, got bool",
        ),
        ({"type": "list_jobs", "id": 1, "verbose": True}, "list_jobs: unknown field"),
        ({"type": "subscribe", "id": 1, "job_id": "j" * 5000}, "longer than 4096"),
    ],
)
def test_requests_are_validated_and_the_error_names_the_field(message, expected):
    with pytest.raises(ProtocolError, match=expected):
        protocol.validate_request(message)


def test_valid_requests_pass():
    for message in (
        {"type": "hello", "id": 0, "token": "abc", "protocol": 1, "client": "nuke"},
        {"type": "submit", "id": "a1", "job": {"input": "/x.exr"}},
        {"type": "status", "id": 3},
        {"type": "status", "id": 3, "job_id": "abc"},
        {"type": "shutdown", "id": 9},
    ):
        assert protocol.validate_request(message) is message


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ({"input": "/a.exr", "passes": "depth"}, "'passes' has the wrong type"),
        ({"input": "/a.exr", "frames": 1001}, "'frames' has the wrong type"),
        ({"input": "/a.exr", "stabilize": 3}, "'stabilize' has the wrong type"),
        ({"input": "/a.exr", "window": "8"}, "'window' has the wrong type"),
        ({"input": "/a.exr", "window": 0}, "'window' must be at least 1"),
        ({"input": "/a.exr", "output": "v" * 70_000}, "'output' is longer"),
        ({"input": "/a.exr", "albedo": True}, "unknown job field"),
        ({"input": "/a.exr", "passes": ["albedo"]}, "subset of"),
        ({"input": ""}, "'input' must name"),
    ],
)
def test_jobs_from_the_wire_are_type_checked(job, expected):
    with pytest.raises(BadArgumentsError, match=expected):
        protocol.job_from_wire(job)


def test_client_side_job_paths_become_absolute_and_random_weights_stay():
    wire = protocol.job_to_wire(
        RenderJob(
            input="plates/a.####.exr",
            output="out/a_buffers.####.exr",
            weights="random:3",
            models_dir="~/m",
            depth_temporal_weights="run/temporal.safetensors",
        ),
        cwd="/shots/sh010",
    )
    assert wire["input"] == "/shots/sh010/plates/a.####.exr"
    assert wire["output"] == "/shots/sh010/out/a_buffers.####.exr"
    assert wire["weights"] == "random:3"
    assert wire["models_dir"] == os.path.expanduser("~/m")
    assert wire["depth_temporal_weights"] == "/shots/sh010/run/temporal.safetensors"
    assert wire["normal_temporal_weights"] is None
    assert (
        protocol.job_to_wire({"input": "a.exr", "weights": "w/x.safetensors"}, cwd="/s")["weights"]
        == "/s/w/x.safetensors"
    )
    assert RenderJob.from_dict(wire).passes == ("depth", "normal")
    assert protocol.job_to_wire({"input": "/a.exr", "passes": ("depth",)})["passes"] == [
        "depth"
    ]  # Python tuples are fine


def test_server_sends_events_that_are_not_plain_json_without_dropping_them():
    from pathlib import Path

    from bufferany_core.service.server import _encode

    event = {
        "type": "event",
        "job_id": "j",
        "event": {"type": "frame_done", "frame": 1, "path": Path("/o/a.0001.exr")},
    }
    assert protocol.decode(_encode(event)[4:])["event"]["path"] == "/o/a.0001.exr"
    broken = {"type": "event", "job_id": "j", "event": {"type": "progress", "percent": float("nan")}}
    note = protocol.decode(_encode(broken)[4:])["event"]
    assert note["type"] == "progress" and "could not be encoded" in note["message"]
