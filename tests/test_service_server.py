"""A real `bufferany-server` process on loopback: discovery, authentication, hostile input, life cycle."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import stat
import struct
import subprocess
import threading
import time

import pytest
from service_support import (
    ServerProcess,
    closed_by_server,
    raw_socket,
    receive,
    send,
    send_body,
    server_command,
)

from bufferany_core import discovery, protocol
from bufferany_core.client import (
    AuthenticationError,
    Client,
    RequestRejectedError,
    ServerNotFoundError,
)
from bufferany_core.errors import BadArgumentsError, ExitCode, ServiceError
from bufferany_core.models.catalog import CATALOGUES, DEFAULT_MODELS


@pytest.fixture
def server(tmp_path):
    process = ServerProcess(tmp_path)
    yield process
    process.stop()


def test_discovery_file_is_private_and_names_a_loopback_server(server):
    mode = stat.S_IMODE(server.discovery.stat().st_mode)
    assert mode == 0o600, oct(mode)
    info = json.loads(server.discovery.read_text())
    assert info["host"] == "127.0.0.1" and info["pid"] == server.process.pid
    assert info["protocol"] == protocol.PROTOCOL_VERSION and len(info["token"]) >= 32
    with Client.connect(server.discovery) as client:
        status = client.status()
    assert status["pid"] == server.process.pid and status["port"] == info["port"]
    assert status["allowed_roots"] == [os.path.realpath(server.folder.parent)]


def test_wrong_or_missing_token_is_refused_and_the_server_keeps_serving(server):
    host, port = server.address
    with pytest.raises(AuthenticationError, match="wrong token"):
        Client.connect(host=host, port=port, token=server.info["token"][:-1] + "x")
    with pytest.raises(AuthenticationError, match="wrong token"):
        Client.connect(host=host, port=port, token="\u00e9" * 43)  # non-ASCII must not crash the comparison

    sock = raw_socket(server, hello=False)
    send(sock, {"type": "hello", "id": 0, "protocol": 1})
    reply = receive(sock)
    assert reply["code"] == "auth" and "missing field 'token'" in reply["message"]
    assert closed_by_server(sock)

    sock = raw_socket(server, hello=False)
    send(sock, {"type": "list_jobs", "id": 1})
    assert receive(sock)["code"] == "auth"
    assert closed_by_server(sock)

    sock = raw_socket(server, hello=False)
    send(sock, {"type": "hello", "id": 0, "token": server.info["token"], "protocol": 99})
    reply = receive(sock)
    assert reply["code"] == "version" and reply["protocol"] == protocol.PROTOCOL_VERSION

    with Client.connect(server.discovery) as client:
        assert client.list_jobs() == []


def _malformed(rng: random.Random) -> bytes:
    """One message body the server must answer with an error without dropping the connection."""
    kind = rng.randrange(9)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 300))
    if kind == 1:
        valid = json.dumps({"type": "status", "id": 1}).encode()
        return valid[: rng.randint(1, len(valid) - 1)]
    if kind == 2:
        return json.dumps(rng.choice([[1, 2], "text", 3.5, None, True])).encode()
    if kind == 3:
        return b"[" * rng.randint(2000, 50_000)
    if kind == 4:
        return json.dumps({"type": rng.choice(["launch", "", None, 7, "HELLO"]), "id": 1}).encode()
    if kind == 5:
        return json.dumps(
            {"type": rng.choice(list(protocol.REQUESTS)), "id": rng.choice([None, True, [], {}, "x" * 70])}
        ).encode()
    if kind == 6:
        junk = rng.choice([None, 5, -1.5, [], {"a": 1}, "x" * 5000, True])
        return json.dumps(
            {"type": rng.choice(["cancel", "subscribe", "status"]), "id": 2, "job_id": junk}
        ).encode()
    if kind == 7:
        return json.dumps({"type": "list_jobs", "id": 3, rng.choice(["x", "token", "job"]): 1}).encode()
    job = rng.choice(
        [
            None,
            [],
            "x",
            {"input": 5},
            {"input": "/a.exr", "passes": 3},
            {"input": "rel.exr"},
            {"input": "/a.exr", "bogus": 1},
            {"input": "/a.exr", "output": "v" * 70_000},
        ]
    )
    return json.dumps({"type": "submit", "id": 4, "job": job}).encode()


def test_thousands_of_malformed_messages_are_answered_and_the_server_still_serves(server):
    rng = random.Random(1234)
    sock = raw_socket(server)
    answered, deadline = 0, time.monotonic() + 4.0
    while answered < 3000 and time.monotonic() < deadline:
        send_body(sock, _malformed(rng))
        reply = receive(sock)
        assert reply["type"] == "error", reply
        assert reply["code"] in ("bad_message", "bad_request", "rejected"), reply
        assert reply["message"]
        answered += 1
    assert answered >= 1000, f"only {answered} malformed messages answered in the time budget"

    # Framing errors the byte stream cannot recover from: an error, then the server hangs up.
    oversized = [rng.randint(protocol.MAX_MESSAGE_BYTES + 1, 0xFFFFFFFF) for _ in range(300)]
    for length in [protocol.MAX_MESSAGE_BYTES + 1, 0xFFFFFFFF, 0, *oversized]:
        bad = raw_socket(server, hello=rng.random() < 0.5)
        bad.sendall(struct.pack(">I", length) + rng.randbytes(rng.randint(0, 100)))
        assert receive(bad)["code"] == ("bad_frame" if length == 0 else "too_large")
        assert closed_by_server(bad)
        bad.close()
    for _ in range(300):  # truncated messages, before and after hello, then the client vanishes
        cut = raw_socket(server, hello=rng.random() < 0.5)
        cut.sendall(struct.pack(">I", 500) + rng.randbytes(rng.randint(0, 499)))
        cut.close()
    garbage = raw_socket(server, hello=False)
    garbage.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert receive(garbage)["code"] == "too_large"  # "GET " read as a length

    send(sock, {"type": "status", "id": "after"})
    reply = receive(sock)
    assert reply["type"] == "result" and reply["id"] == "after"
    with Client.connect(server.discovery) as client:
        assert client.status()["pid"] == server.process.pid
    assert server.process.poll() is None
    assert "Traceback" not in server.log()  # every bad input was an expected case, not a crash


def test_connections_over_the_limit_are_told_the_server_is_busy(server):
    from bufferany_core.service.server import MAX_CONNECTIONS

    held = [raw_socket(server) for _ in range(MAX_CONNECTIONS)]
    extra = raw_socket(server, hello=False)
    send(extra, {"type": "hello", "id": 7, "token": server.info["token"], "protocol": protocol.PROTOCOL_VERSION})
    reply = receive(extra)
    assert reply["code"] == "busy" and f"limit {MAX_CONNECTIONS}" in reply["message"] and reply["id"] == 7
    assert closed_by_server(extra)
    for sock in held:
        sock.close()
    deadline = time.monotonic() + 10
    while True:  # the server notices the closed sockets on its next read
        try:
            with Client.connect(server.discovery) as client:
                if client.status()["connections"] == 1:
                    break
        except ServerNotFoundError:
            pass
        assert time.monotonic() < deadline, "the server did not free its connection slots"
        time.sleep(0.05)


def test_an_idle_unauthenticated_flood_cannot_lock_out_a_client(server):
    from bufferany_core.service.server import HELLO_TIMEOUT_S, MAX_CONNECTIONS, MAX_HELLO_BYTES, MAX_PENDING

    idle = [socket.create_connection(server.address) for _ in range(MAX_CONNECTIONS + MAX_PENDING + 20)]
    started = time.monotonic()
    with Client.connect(server.discovery, timeout=5) as client:  # a newcomer evicts the oldest idle one
        status = client.status()
    assert time.monotonic() - started < 1.0
    assert status["connections"] == 1 and status["pending_connections"] <= MAX_PENDING
    assert sum(closed_by_server(sock) for sock in idle[:20]) == 20  # the oldest idle ones were dropped

    big = raw_socket(server, hello=False)
    send(big, {"type": "hello", "id": 0, "token": "x" * MAX_HELLO_BYTES, "protocol": 1})
    reply = receive(big)
    assert reply["code"] == "too_large" and "before authentication" in reply["message"]
    assert closed_by_server(big)

    silent = raw_socket(server, hello=False)
    silent.settimeout(HELLO_TIMEOUT_S + 5)
    waited = time.monotonic()
    assert closed_by_server(silent)
    assert time.monotonic() - waited < HELLO_TIMEOUT_S + 2
    for sock in idle + [big, silent]:
        sock.close()


def test_bad_jobs_are_rejected_with_the_cli_exit_code(server, tmp_path):
    plate = tmp_path / "plates" / "a.####.exr"
    with Client.connect(server.discovery) as client:
        with pytest.raises(
            RequestRejectedError, match="outside the folders this server may write to"
        ) as info:
            client.submit({"input": str(plate), "output": "/etc/bufferany/a.####.exr"})
        assert info.value.exit_code == ExitCode.OUTPUT_NOT_WRITABLE
        with pytest.raises(RequestRejectedError, match="outside"):  # `..` cannot climb out of the roots
            client.submit({"input": str(plate), "output": str(tmp_path / ".." / ".." / "escape" / "a.####.exr")})
        with pytest.raises(BadArgumentsError, match="unknown job field"):
            client.submit({"input": str(plate), "albedo": True})
        with pytest.raises(RequestRejectedError, match="no job with id 'nope'") as info:
            client.status("nope")
        assert info.value.code == "unknown_job"
        assert client.list_jobs() == []

    sock = raw_socket(server)
    send(sock, {"type": "submit", "id": 1, "job": {"input": "relative/a.exr"}})
    reply = receive(sock)
    assert reply["code"] == "rejected" and reply["exit_code"] == ExitCode.BAD_ARGUMENTS
    assert "must be an absolute path" in reply["message"]
    send(sock, {"type": "submit", "id": 2, "job": {"input": str(plate), "weights": "w.safetensors"}})
    reply = receive(sock)
    assert (
        reply["exit_code"] == ExitCode.BAD_ARGUMENTS
        and "'weights' must be an absolute path" in reply["message"]
    )


def test_sigterm_stops_cleanly_and_removes_the_discovery_file(server):
    idle = Client.connect(server.discovery)  # connections still open at shutdown are closed quietly
    server.process.send_signal(signal.SIGTERM)
    assert server.process.wait(timeout=20) == 0
    assert not server.discovery.exists()
    assert "stopped" in server.log() and "Traceback" not in server.log()
    with pytest.raises(ServerNotFoundError, match="closed the connection"):
        idle.status()
    idle.close()
    with pytest.raises(ServerNotFoundError, match="does not exist"):
        Client.connect(server.discovery)


def test_kill_9_gives_a_clear_error_and_a_new_server_starts(server, tmp_path):
    client = Client.connect(server.discovery)
    old_pid = server.process.pid
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    with pytest.raises(
        ServerNotFoundError, match=f"stale discovery file .*process {old_pid} is no longer running"
    ):
        Client.connect(server.discovery)
    with pytest.raises(ServerNotFoundError, match="closed the connection|lost the connection"):
        client.status()  # a client made before the kill
    client.close()

    restarted = ServerProcess(tmp_path)  # the stale file is replaced
    try:
        with Client.connect(server.discovery) as fresh:
            assert fresh.status()["pid"] == restarted.process.pid != old_pid
    finally:
        restarted.stop()


def test_a_second_server_does_not_take_over_a_live_ones_discovery_file(server, tmp_path):
    with pytest.raises(RuntimeError, match="already running"):
        ServerProcess(tmp_path, discovery=server.discovery)
    with Client.connect(server.discovery) as client:
        assert client.status()["pid"] == server.process.pid


def test_client_starts_a_server_on_demand_and_shutdown_removes_it(tmp_path):
    path = tmp_path / "state" / "server.json"
    path.parent.mkdir(mode=0o700)  # the discovery folder must be private
    path.write_text("{not json")  # left behind by a crash mid-write of some other tool
    path.chmod(0o600)
    with pytest.raises(ServerNotFoundError, match="not valid JSON"):
        Client.connect(path)
    command = [*server_command(), "--port", "0", "--device", "cpu"]
    with Client.connect(path, start_server=True, server_command=command, timeout=30) as client:
        pid = client.status()["pid"]
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        with Client.connect(path, start_server=True, server_command=command) as second:  # reuses it
            assert second.status()["pid"] == pid
        client.shutdown()
    deadline = time.monotonic() + 20
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not path.exists()
    with pytest.raises(ServerNotFoundError, match="exited with code 2"):
        Client.connect(
            tmp_path / "other.json", start_server=True, server_command=[*server_command(), "--no-such-flag"]
        )


def test_a_silent_peer_times_out_with_a_clear_error():
    with socket.create_server(("127.0.0.1", 0)) as listener:  # accepts, never answers
        port = listener.getsockname()[1]
        with pytest.raises(ServiceError, match="did not answer within 0.5 s"):
            Client.connect(host="127.0.0.1", port=port, token="t", timeout=0.5)


def test_a_port_in_use_is_a_service_error(tmp_path):
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        run = subprocess.run(
            [*server_command(), "--port", str(port), "--discovery", str(tmp_path / "s.json")],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == ExitCode.SERVICE
    assert f"cannot listen on 127.0.0.1:{port}" in run.stderr
    assert not (tmp_path / "s.json").exists()


def test_an_unusable_discovery_path_is_a_clear_error_not_a_traceback(tmp_path):
    (tmp_path / "a_file").touch()
    (tmp_path / "taken").mkdir(mode=0o700)
    (tmp_path / "taken" / "s.json").mkdir()  # a folder where the discovery file goes
    runs = [
        subprocess.run(
            [*server_command(), "--port", "0", "--device", "cpu", "--discovery", str(path)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        for path in (tmp_path / "a_file" / "s.json", tmp_path / "taken" / "s.json")
    ]
    assert runs[0].returncode == ExitCode.OUTPUT_NOT_WRITABLE, runs[0].stderr
    assert f"cannot create the lock file {tmp_path / 'a_file' / 's.json.lock'}" in runs[0].stderr
    assert runs[1].returncode == ExitCode.OUTPUT_NOT_WRITABLE, runs[1].stderr
    assert f"cannot write {tmp_path / 'taken' / 's.json'}" in runs[1].stderr
    assert not any("Traceback" in run.stderr or "cannot listen" in run.stderr for run in runs)
    with pytest.raises(ServerNotFoundError, match="cannot write its log"):  # the client, before starting one
        Client.connect(tmp_path / "a_file" / "s.json", start_server=True, server_command=server_command())


def test_two_hosts_starting_a_server_at_once_share_one(tmp_path):
    path = tmp_path / "server.json"
    command = [*server_command(), "--port", "0", "--device", "cpu"]
    pids, errors = [], []

    def host() -> None:
        try:
            with Client.connect(path, start_server=True, server_command=command, timeout=60) as client:
                pids.append(client.status()["pid"])
        except Exception as exc:  # reported below: a thread must not swallow it
            errors.append(exc)

    threads = [threading.Thread(target=host) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert errors == [] and len(pids) == 3 and len(set(pids)) == 1, (errors, pids)
    with Client.connect(path) as client:
        client.shutdown()
    lock = discovery.ServerLock(path)
    deadline = time.monotonic() + 30
    while not lock.acquire():  # free once the one server has exited: no orphan holds it
        assert time.monotonic() < deadline, "a server still holds the discovery lock"
        time.sleep(0.05)
    lock.release()


@pytest.mark.parametrize("value", ["0", "-3", "four"])
def test_a_bad_max_models_exits_2_naming_the_option(tmp_path, value):
    run = subprocess.run(
        [*server_command(), "--max-models", value, "--discovery", str(tmp_path / "s.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == ExitCode.BAD_ARGUMENTS == 2, run.stderr
    assert "--max-models" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "s.json").exists()


def test_status_reports_the_max_models_the_server_was_started_with(tmp_path):
    process = ServerProcess(tmp_path, "--max-models", "2")
    try:
        with Client.connect(process.discovery) as client:
            status = client.status()
    finally:
        process.stop()
    assert status["max_models"] == 2
    # the hosts' model menus: every catalogue name per pass, and the defaults
    assert status["available_models"] == {p: list(entries) for p, entries in CATALOGUES.items()}
    assert status["default_models"] == DEFAULT_MODELS
    assert not status["pipeline_loaded"]  # listing the models loads no pipeline


def test_a_subscriber_that_arrives_as_a_job_ends_still_gets_its_end(tmp_path):
    """A job that fails at once (a missing plate) ends on the worker thread while its terminal event is
    on its way to the event loop. A client that subscribes in that moment (the Blender add-on's first
    poll) must still get the end, never wait forever. The worker's hand-over is slowed down here to
    hold that moment open; the server, worker and client are the real ones."""
    import asyncio

    from bufferany_core.service.server import Server

    class SlowHandOver(Server):
        def _emit_from_worker(self, job, event):
            if event["type"] in protocol.TERMINAL_EVENTS:
                time.sleep(1.0)
            super()._emit_from_worker(job, event)

        def _install_signal_handlers(self):  # the loop runs off the main thread here
            pass

    server = SlowHandOver(discovery_path=tmp_path / "server.json", allowed_roots=[str(tmp_path)], device="cpu")
    loop = asyncio.new_event_loop()
    serving = threading.Thread(target=loop.run_until_complete, args=(server.run(),), daemon=True)
    serving.start()
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "server.json").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with Client.connect(tmp_path / "server.json", timeout=10) as client:
            job_id = client.submit({"input": str(tmp_path / "missing.####.exr"), "frames": "1-3"})
            while client.status(job_id)["state"] in ("queued", "running") and time.monotonic() < deadline:
                time.sleep(0.01)
            ended = []
            waiting = threading.Thread(target=lambda: ended.extend(client.events(job_id)), daemon=True)
            waiting.start()
            waiting.join(10)
            assert not waiting.is_alive(), "the subscriber never got the job's end"
            assert ended[-1]["type"] == "failed" and "missing" in ended[-1]["error"]
            assert ended[-1]["exit_code"] == ExitCode.INPUT_NOT_FOUND
    finally:
        loop.call_soon_threadsafe(server.request_stop)
        serving.join(30)
