"""`bufferany-server --idle-exit SECONDS`: a server started for a farm task or a batch host shuts down
cleanly once nobody has used it for that long (a real server process)."""

from __future__ import annotations

import time

import pytest
from service_support import ServerProcess, closed_by_server, raw_socket

from bufferany_core.client import Client

pytestmark = pytest.mark.slow


def _wait_exit(server: ServerProcess, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = server.process.poll()
        if code is not None:
            return code
        time.sleep(0.05)
    return None


def test_idle_server_exits_cleanly_and_removes_its_discovery_file(tmp_path):
    folder = tmp_path / "idle"
    folder.mkdir(mode=0o700)
    server = ServerProcess(folder, "--idle-exit", "1.5", timeout=60)
    try:
        with Client.connect(server.discovery) as client:
            assert client.status()["idle_exit"] == 1.5
            time.sleep(3.0)  # a connected client keeps it alive, however long it is quiet
            assert server.process.poll() is None
            client.status()
        # an unauthenticated connection (a port scan) does not keep it alive
        stray = raw_socket(server, hello=False)
        started = time.monotonic()
        assert _wait_exit(server, 30) == 0, server.log()
        assert time.monotonic() - started >= 1.0
        assert not server.discovery.exists()
        assert "--idle-exit" in server.log()
        stray.settimeout(5)
        assert closed_by_server(stray)
        stray.close()
    finally:
        server.stop()


def test_idle_exit_must_be_positive(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir(mode=0o700)
    with pytest.raises(RuntimeError, match="idle-exit must be more than 0"):
        ServerProcess(folder, "--idle-exit", "0", timeout=60)
