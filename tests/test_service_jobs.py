"""Real render jobs through a real `bufferany-server`: tiny random-weight depth model, real EXR plates.

One server serves the whole module (as one serves a Nuke session): its models stay loaded between
tests, which is itself under test."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import OpenImageIO as oiio
import pytest
from pipeline_plates import write_plate
from service_support import ServerProcess

from bufferany_core.client import Client, JobCancelledError, JobFailedError
from bufferany_core.errors import ExitCode

# Small enough for 2 shared CPU cores, still several windows per shot.
TINY = {
    "passes": ["depth"],
    "depth_model": "video-depth-anything-tiny",
    "weights": "random",
    "window": 6, "overlap": 2, "depth_processing_size": 28, "normal_processing_size": 28,
}
# Long enough that a cancel sent after the first frame lands well before the last, even on a GPU.
LONG_SHOT = 90


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("service"))
    yield process
    process.stop()


@pytest.fixture
def client(server):
    with Client.connect(server.discovery, timeout=30) as connected:
        yield connected


def _plate(server, name, frames=range(1001, 1013)):
    return write_plate(server.folder / name, frames, name=name)


def _depth_channels(path):
    image = oiio.ImageInput.open(str(path))
    assert image is not None, oiio.geterror()
    try:
        return list(image.spec().channelnames)
    finally:
        image.close()


def test_a_job_renders_real_exr_files_and_models_stay_loaded(server, client):
    plate = _plate(server, "full")
    events = []
    result = client.wait(client.submit({"input": plate, **TINY}), on_event=events.append)
    kinds = [event["type"] for event in events]
    assert kinds[0] == "queued" and kinds[1] == "started" and kinds[-1] == "finished"
    assert kinds.count("frame_done") == 12 and "progress" in kinds
    assert events[1]["untrained"] is True and events[-1]["result"] == result
    assert result["frames_written"] == list(range(1001, 1013))
    for event in events:
        if event["type"] == "frame_done":
            assert "depth.Z" in _depth_channels(event["path"])
    loaded = client.status()["models_loaded"]
    assert [(m["pass"], m["model"], m["precision"]) for m in loaded] == [("depth", "video-depth-anything-tiny", "fp32")]

    # A second job with the same model reuses the loaded predictor (no new load).
    second = _plate(server, "again", range(1, 7))
    client.wait(client.submit({"input": second, **TINY}))
    status = client.status()
    assert status["models_loaded"] == loaded
    assert status["model_loads"] == 1 and status["jobs_run"] >= 2


def test_a_failing_job_reports_why_and_the_next_job_runs(server, client):
    missing = server.folder / "nothing" / "gone.####.exr"
    failing = client.submit({"input": str(missing), **TINY})
    corrupt_plate = _plate(server, "corrupt", range(1, 7))
    (server.folder / "corrupt" / "corrupt.0003.exr").write_bytes(b"not an exr at all")
    corrupt = client.submit({"input": corrupt_plate, **TINY})
    huge = {
        **TINY,
        "depth_processing_size": 300_000,
    }  # terabytes: the allocator refuses
    out_of_memory = client.submit({"input": corrupt_plate, **huge, "frames": "1-2"})
    good = client.submit({"input": _plate(server, "good", range(1, 7)), **TINY})

    with pytest.raises(JobFailedError, match="gone") as info:
        client.wait(failing)
    assert info.value.exit_code == ExitCode.INPUT_NOT_FOUND
    with pytest.raises(JobFailedError, match="corrupt.0003.exr") as info:
        client.wait(corrupt)
    assert info.value.exit_code == ExitCode.UNREADABLE_IMAGE
    assert "Traceback" not in str(info.value)
    with pytest.raises(JobFailedError, match="out of memory on device 'cpu'") as info:
        client.wait(out_of_memory)
    assert info.value.exit_code == ExitCode.OUT_OF_MEMORY
    assert client.wait(good)["frames_written"] == list(range(1, 7))
    assert client.status(failing)["state"] == "failed" and client.status(good)["state"] == "finished"


def test_old_ended_jobs_keep_only_their_ending(server, client):
    from bufferany_core.service.server import FULL_HISTORY_JOBS

    missing = {"input": str(server.folder / "void" / "none.####.exr"), **TINY}
    ids = [client.submit(missing) for _ in range(FULL_HISTORY_JOBS + 5)]
    with pytest.raises(JobFailedError):
        client.wait(ids[-1])
    assert [e["type"] for e in client.events(ids[-1])] == ["queued", "failed"]
    assert [e["type"] for e in client.events(ids[0])] == ["failed"]
    assert client.status(ids[0])["exit_code"] == ExitCode.INPUT_NOT_FOUND


def test_two_clients_queue_jobs_that_run_one_after_the_other(server, client):
    first_plate, second_plate = _plate(server, "first"), _plate(server, "second", range(1, 7))
    with Client.connect(server.discovery) as other:
        first = client.submit({"input": first_plate, **TINY})
        second = other.submit({"input": second_plate, **TINY})
        third = other.submit({"input": second_plate, **TINY, "overwrite": True})
        queued = next(other.events(second))
        assert queued["type"] == "queued" and queued["jobs_ahead"] == 1
        assert client.cancel(third)["previous_state"] == "queued"  # cancelled before it starts
        with pytest.raises(JobCancelledError):
            other.wait(third)
        client.wait(first)
        other.wait(second)
    records = {job["job_id"]: job for job in client.list_jobs()}
    assert records[second]["started_at"] >= records[first]["ended_at"]
    assert records[third]["state"] == "cancelled" and records[third]["started_at"] is None


def test_cancel_stops_a_running_job_and_leaves_whole_frames(server, client):
    plate = _plate(server, "cancel", range(1, LONG_SHOT + 1))
    job_id = client.submit({"input": plate, **TINY})
    seen = []
    for event in client.events(job_id):
        seen.append(event)
        if event["type"] == "frame_done" and sum(e["type"] == "frame_done" for e in seen) == 1:  # the first frame
            client.cancel(job_id)
    assert seen[-1]["type"] == "cancelled" and "re-run to resume" in seen[-1]["message"]
    written = [e["path"] for e in seen if e["type"] == "frame_done"]
    assert 1 <= len(written) < LONG_SHOT
    for path in written:
        assert "depth.Z" in _depth_channels(path)
    assert [
        p.name for p in (server.folder / "cancel").iterdir() if p.name.startswith(".")
    ] == []  # no temporaries
    with pytest.raises(JobCancelledError):
        client.wait(job_id)  # a late waiter gets the same ending
    assert client.status(job_id)["state"] == "cancelled"


def test_a_client_that_disconnects_mid_job_does_not_kill_it(server, client):
    plate = _plate(server, "orphan", range(1, 19))
    # A separate client process submits, sees the first frame, then dies without a word.
    program = textwrap.dedent(
        f"""
        import os, sys
        from bufferany_core.client import Client
        client = Client.connect({str(server.discovery)!r})
        job_id = client.submit({{"input": {plate!r}, **{TINY!r}}})
        print(job_id, flush=True)
        for event in client.events(job_id):
            if event["type"] == "frame_done":
                os._exit(0)
        """
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    job_id = run.stdout.split()[0]
    assert client.status(job_id)["state"] in ("running", "finished")
    result = client.wait(job_id)
    assert result["frames_written"] == list(range(1, 19))
    assert client.status()["connections"] == 1  # the dead client's sockets are gone
    assert "Traceback" not in server.log()


@pytest.mark.slow  # a second server: pays torch's import and the model load again
def test_shutdown_during_a_job_cancels_it_and_the_queue(tmp_path):
    server = ServerProcess(tmp_path)
    try:
        with Client.connect(server.discovery) as client:
            running = client.submit({"input": _plate(server, "long", range(1, LONG_SHOT + 1)), **TINY})
            waiting = client.submit({"input": _plate(server, "next", range(1, 7)), **TINY})
            running_events, waiting_events = client.events(running), client.events(waiting)
            assert next(waiting_events)["type"] == "queued"
            assert next(e for e in running_events if e["type"] == "frame_done")
            client.shutdown()
            assert [e["type"] for e in running_events][-1] == "cancelled"
            assert [e["message"] for e in waiting_events] == ["the server is shutting down"]
        assert server.process.wait(timeout=60) == 0
        assert not server.discovery.exists()
    finally:
        server.stop()


@pytest.mark.slow  # a second server: pays torch's import and the model loads again
def test_a_server_with_max_models_1_unloads_the_last_model_and_reloads_it(tmp_path):
    process = ServerProcess(tmp_path, "--max-models", "1")
    plate = write_plate(tmp_path / "plate", range(1, 7), name="plate")
    try:
        with Client.connect(process.discovery, timeout=30) as client:
            for size in (28, 42, 28):
                sizes = {"depth_processing_size": size, "normal_processing_size": size}
                client.wait(client.submit({**TINY, **sizes, "input": plate, "overwrite": True}))
            status = client.status()
    finally:
        process.stop()
    assert status["max_models"] == 1
    assert status["model_loads"] == 3  # the 28 px predictor was evicted by the 42 px one, then loaded again
    assert [m["processing_size"] for m in status["models_loaded"]] == [28]
