"""Bounded everything: frame counts refused without listing frames, plate size from headers, a
queue with room per client and in total, list_jobs in pages, every field checked (NUL, lone
surrogates, required fields) so no request can break another client's replies, one log line per job."""

from __future__ import annotations

import json
import time

import pytest
from pipeline_plates import write_plate
from service_support import ServerProcess, raw_socket, receive, send, send_body

from bufferany_core.client import Client, JobFailedError, RequestRejectedError
from bufferany_core.errors import ExitCode

TINY = {"passes": ["depth"], "depth_model": "video-depth-anything-tiny", "weights": "random",
        "window": 6, "overlap": 2, "depth_processing_size": 28}


@pytest.fixture
def server(tmp_path):
    process = ServerProcess(tmp_path, "--max-queue", "3", "--max-queue-per-client", "2",
                            "--max-frames", "50", "--max-image-pixels", "900",
                            "--log-file", str(tmp_path / "rotating.log"))
    yield process
    process.stop()


def test_a_billion_frames_is_refused_at_once_and_the_server_stays_quick(server, tmp_path):
    plate = write_plate(tmp_path / "plates", range(1, 4), name="p")
    with Client.connect(server.discovery) as client:
        started = time.monotonic()
        with pytest.raises(RequestRejectedError, match="names 999999999 frames; this server takes at most 50"):
            client.submit({"input": plate, "frames": "1-999999999"})
        with pytest.raises(RequestRejectedError, match="'shot_range' names 100 frames"):
            client.submit({"input": plate, "shot_range": "1-100"})
        assert time.monotonic() - started < 1.0
        status = client.status()
    assert status["max_frames"] == 50 and status["max_queue"] == 3


def test_plate_size_and_span_are_checked_from_headers_and_names(server, tmp_path):
    big = write_plate(tmp_path / "big", range(1, 3), name="big")  # 40 x 24 = 960 pixels > 900
    sparse_folder = tmp_path / "sparse"
    write_plate(sparse_folder, [1, 2, 60], name="sparse", size=(20, 10))
    with Client.connect(server.discovery, timeout=30) as client:
        with pytest.raises(JobFailedError, match=r"40x24 \(960 pixels\); this server takes at most 900") as info:
            client.wait(client.submit({"input": big, **TINY}))
        assert info.value.exit_code == ExitCode.BAD_ARGUMENTS
        with pytest.raises(JobFailedError, match="spans 60 frames; this server takes at most 50"):
            client.wait(client.submit({"input": str(sparse_folder / "sparse.####.exr"), **TINY}))


def test_the_queue_is_bounded_per_client_and_in_total(server, tmp_path):
    missing = {"input": str(tmp_path / "none" / "x.####.exr"), **TINY}
    token = server.info["token"]
    with Client(*server.address, token, client_name="a") as a, Client(*server.address, token, client_name="b") as b:
        first = a.submit(missing)  # the worker takes it (and imports the pipeline: seconds)
        deadline = time.monotonic() + 10
        while a.status(first)["state"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.01)
        queued = [a.submit(missing), a.submit(missing)]
        with pytest.raises(RequestRejectedError, match="queue full for client 'a'") as info:
            a.submit(missing)
        assert info.value.code == "queue_full"
        queued.append(b.submit(missing))
        with pytest.raises(RequestRejectedError, match=r"queue full: 3 jobs are waiting \(limit 3\)"):
            b.submit(missing)
        for job in queued:
            a.cancel(job)
        b.submit(missing)  # room again


def test_list_jobs_comes_in_pages(server, tmp_path):
    missing = {"input": str(tmp_path / "none" / "x.####.exr"), **TINY}
    with Client.connect(server.discovery) as client:
        ids = []
        for _ in range(3):
            ids.append(client.submit(missing))
            client.cancel(ids[-1])
    sock = raw_socket(server)
    send(sock, {"type": "list_jobs", "id": 1, "limit": 2})
    page = receive(sock)
    assert [job["job_id"] for job in page["jobs"]] == ids[:2]
    assert page["total"] == 3 and page["next_offset"] == 2
    send(sock, {"type": "list_jobs", "id": 2, "offset": page["next_offset"], "limit": 2})
    page = receive(sock)
    assert [job["job_id"] for job in page["jobs"]] == ids[2:] and page["next_offset"] is None
    send(sock, {"type": "list_jobs", "id": 3, "offset": -1})
    assert receive(sock)["code"] == "bad_request"


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ({}, "'input' required"),
        ({"output": "/x/a.####.exr"}, "'input' required"),
        ({"input": "/a\x00/b.####.exr"}, "'input' contains a NUL"),
        ({"input": "/a/b.####.exr", "frames": "1-3\ud800"}, "'frames' contains a lone surrogate"),
        ({"input": "/a/b.####.exr", "passes": ["depth\udfff"]}, "'passes' contains a lone surrogate"),
        ({"input": "/a/b.####.exr", "\ud800": 1}, "unknown job field"),
    ],
)
def test_bad_strings_and_missing_fields_are_rejected_not_internal(server, job, expected):
    sock = raw_socket(server)
    body = json.dumps({"type": "submit", "id": 9, "job": job}).encode()  # \ud800 travels escaped
    send_body(sock, body)
    reply = receive(sock)
    assert reply["code"] == "rejected" and reply["exit_code"] == ExitCode.BAD_ARGUMENTS, reply
    assert expected in reply["message"]


def test_a_poisoned_name_cannot_break_other_clients_replies(server, tmp_path):
    for hello in (
        {"type": "hello", "id": 0, "token": server.info["token"], "protocol": 1, "client": "evil\ud800"},
        {"type": "hello", "id": 0, "token": "\udc00" * 43, "protocol": 1},
        {"type": "hello", "id": "\ud800", "token": server.info["token"], "protocol": 1},
    ):
        sock = raw_socket(server, hello=False)
        send_body(sock, json.dumps(hello).encode())
        reply = receive(sock)
        assert reply["code"] == "auth", reply
    sock = raw_socket(server)
    send_body(sock, json.dumps({"type": "status", "id": 1, "job_id": "\ud800"}).encode())
    assert "lone surrogate" in receive(sock)["message"]
    send_body(sock, json.dumps({"type": "status", "id": "\udfff"}).encode())
    assert receive(sock)["code"] == "bad_request"
    send_body(sock, json.dumps({"type": "status", "id": 1, "\ud800\x00": 1}).encode())
    assert "unknown field" in receive(sock)["message"]
    with Client.connect(server.discovery) as client:
        assert client.list_jobs() == []
        assert client.status()["pid"] == server.process.pid
    log = (tmp_path / "rotating.log").read_text()
    assert "listening on" in log and "Traceback" not in log and "Logging error" not in server.log()
