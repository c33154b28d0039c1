"""A real `bufferany-server` subprocess on 127.0.0.1 for the service tests, and raw-socket helpers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bufferany_core import protocol

SERVER_SCRIPT = Path(sys.executable).with_name("bufferany-server")


def server_command() -> list[str]:
    if not SERVER_SCRIPT.exists():
        raise RuntimeError(
            f"{SERVER_SCRIPT} is missing: install the project (pip install -e .) to get the console script"
        )
    return [str(SERVER_SCRIPT)]


class ServerProcess:
    """`bufferany-server --port 0` with its discovery file and log in `folder`."""

    def __init__(
        self,
        folder: Path,
        *args: str,
        discovery: Path | None = None,
        timeout: float = 20.0,
        allow_roots: list[Path] | None = None,
    ):
        """`allow_roots` default: the folder above `folder` (pytest's base temporary folder, so that
        plates in any test's tmp_path may be rendered, as a studio's --allow-root /mnt/shows would)."""
        self.folder = folder
        self.allow_roots = [folder.parent] if allow_roots is None else allow_roots
        self.discovery = discovery or folder / "server.json"
        self.log_path = folder / f"server-{time.monotonic_ns()}.log"
        command = [
            *server_command(),
            "--port",
            "0",
            "--discovery",
            str(self.discovery),
            *[arg for root in self.allow_roots for arg in ("--allow-root", str(root))],
            "--device",
            "cpu",
            *args,
        ]
        # One torch thread: test machines are small and shared, and oversubscribed threads cost 10x.
        env = dict(os.environ, OMP_NUM_THREADS="1")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self._published()
            if info is not None and info["pid"] == self.process.pid:
                self.info = info
                return
            if self.process.poll() is not None:
                raise RuntimeError(f"bufferany-server exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.05)
        self.process.kill()
        raise RuntimeError(f"bufferany-server did not publish {self.discovery} in {timeout} s:\n{self.log()}")

    def _published(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.discovery.read_text())
        except (FileNotFoundError, ValueError):
            return None

    @property
    def address(self) -> tuple[str, int]:
        return self.info["host"], self.info["port"]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def raw_socket(server: ServerProcess, *, hello: bool = True, timeout: float = 10.0) -> socket.socket:
    """A plain socket to the server, authenticated unless `hello` is False."""
    sock = socket.create_connection(server.address, timeout=timeout)
    if hello:
        send(
            sock,
            {"type": "hello", "id": 0, "token": server.info["token"], "protocol": protocol.PROTOCOL_VERSION},
        )
        reply = receive(sock)
        assert reply["type"] == "welcome", reply
    return sock


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.sendall(protocol.encode(message))


def send_body(sock: socket.socket, body: bytes) -> None:
    sock.sendall(protocol.HEADER.pack(len(body)) + body)


def receive(sock: socket.socket) -> dict[str, Any]:
    length = protocol.body_length(_exactly(sock, protocol.HEADER.size))
    return protocol.decode(_exactly(sock, length))


def _exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("server closed the connection")
        data += chunk
    return data


def closed_by_server(sock: socket.socket) -> bool:
    """True once the server has closed its end (EOF or reset)."""
    try:
        return sock.recv(1) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
