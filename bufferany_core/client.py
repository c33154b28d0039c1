"""Client of `bufferany-server` for hosts (Nuke, Blender, pyblish, scripts). Standard library only.

    from bufferany_core.client import Client
    with Client.connect(start_server=True) as client:
        job_id = client.submit({"input": "/shots/a/plate.####.exr", "frames": "1001-1010"})
        result = client.wait(job_id, on_event=print)

Requests and replies share one connection (guarded by a lock, so any thread may call cancel while
another waits); each `events()` stream opens its own connection, so a host can iterate events on a
worker thread while its UI thread cancels. Server errors become exceptions carrying the server's
message. docs/protocol.md describes the wire.
"""

from __future__ import annotations

import itertools
import os
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bufferany_core import discovery as _discovery
from bufferany_core import protocol
from bufferany_core.errors import ExitCode, ServiceError, exit_code_for
from bufferany_core.jobs import RenderJob
from bufferany_core.protocol import ProtocolError

__all__ = [
    "Client",
    "ServerNotFoundError",
    "AuthenticationError",
    "ProtocolError",
    "RequestRejectedError",
    "JobFailedError",
    "JobCancelledError",
    "SERVER_COMMAND_ENV",
]

SERVER_COMMAND_ENV = "BUFFERANY_SERVER_CMD"
SERVER_LOG_NAME = "server.log"  # beside the discovery file, for servers the client starts
# A started server outlives the host's session (and its Ctrl-C) like any background service.
_DETACHED: dict[str, Any]
if sys.platform == "win32":
    _DETACHED = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.DETACHED_PROCESS}
else:
    _DETACHED = {"start_new_session": True}


class ServerNotFoundError(ServiceError):
    """No server answers where the discovery file (or the arguments) say, or it cannot be started."""


class AuthenticationError(ServiceError):
    """The server refused the token (or the protocol version)."""


class RequestRejectedError(ServiceError):
    """The server refused a request (a job with a bad field, an output outside the allowed roots,
    an unknown job id). `code` is the protocol's error code; `exit_code` the matching CLI exit code."""

    def __init__(self, message: str, *, code: str, exit_code: int | None = None):
        super().__init__(message)
        self.code = code
        if exit_code is not None:
            self.exit_code = exit_code_for(exit_code)


class JobFailedError(ServiceError):
    """A job ended with an error; the message is the server's, `exit_code` the job's error's code."""

    def __init__(self, message: str, *, exit_code: int, job_id: str):
        super().__init__(message)
        self.exit_code = exit_code_for(exit_code)
        self.job_id = job_id


class JobCancelledError(ServiceError):
    def __init__(self, message: str, *, job_id: str):
        super().__init__(message)
        self.job_id = job_id


def _raise_for(reply: dict[str, Any]) -> None:
    if reply.get("type") != "error":
        return
    code, message = reply.get("code", "error"), reply.get("message", "the server reported an error")
    if code in ("auth", "version"):
        raise AuthenticationError(f"server refused the connection: {message}")
    if code in ("bad_frame", "too_large", "bad_message", "bad_request"):
        raise ProtocolError(f"server: {message}", code=code)
    if code in ("busy", "shutting_down"):
        raise ServerNotFoundError(f"server: {message}")
    raise RequestRejectedError(message, code=code, exit_code=reply.get("exit_code"))


class _Channel:
    """One authenticated socket: framed send and receive."""

    def __init__(self, host: str, port: int, token: str, *, timeout: float, client_name: str):
        try:
            self.sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as exc:
            raise ServerNotFoundError(f"cannot connect to bufferany-server at {host}:{port}: {exc}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        # Event streams wait without a timeout: let the OS notice a peer that vanished.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        self.address = f"{host}:{port}"
        self.timeout = timeout
        hello = {
            "type": "hello",
            "id": 0,
            "token": token,
            "protocol": protocol.PROTOCOL_VERSION,
            "client": client_name,
        }
        try:
            self.send(hello)
            _raise_for(self.receive())
        except BaseException:
            self.close()
            raise

    def send(self, message: dict[str, Any]) -> None:
        try:
            self.sock.sendall(protocol.encode(message))
        except OSError as exc:
            raise ServerNotFoundError(
                f"lost the connection to bufferany-server at {self.address}: {exc}"
            ) from None

    def receive(self) -> dict[str, Any]:
        length = protocol.body_length(self._exactly(protocol.HEADER.size))
        return protocol.decode(self._exactly(length))

    def _exactly(self, size: int) -> bytes:
        chunks, missing = [], size
        while missing:
            try:
                chunk = self.sock.recv(min(missing, 1 << 20))
            except (socket.timeout, TimeoutError):  # noqa: UP041 (distinct classes on Python 3.9: Nuke 14)
                self.close()  # a late reply would pass for the next request's: this channel is done
                raise ServiceError(
                    f"bufferany-server at {self.address} did not answer within {self.timeout} s"
                ) from None
            except OSError as exc:
                raise ServerNotFoundError(
                    f"lost the connection to bufferany-server at {self.address}: {exc}"
                ) from None
            if not chunk:
                raise ServerNotFoundError(
                    f"bufferany-server at {self.address} closed the connection (stopped or killed?)"
                )
            chunks.append(chunk)
            missing -= len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


class Client:
    """A connection to a running bufferany-server. Build it with `Client.connect`."""

    def __init__(
        self, host: str, port: int, token: str, *, timeout: float = 10.0, client_name: str | None = None
    ):
        self.host, self.port, self.timeout = host, port, timeout
        self._token = token
        self._name = client_name or f"{Path(sys.argv[0] or 'python').name}[{os.getpid()}]"
        self._channel = _Channel(host, port, token, timeout=timeout, client_name=self._name)
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    # --- finding a server ---------------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        discovery: str | os.PathLike[str] | None = None,
        *,
        host: str | None = None,
        port: int | None = None,
        token: str | None = None,
        start_server: bool = False,
        server_command: list[str] | None = None,
        timeout: float = 10.0,
    ) -> Client:
        """Connect to the server published in the discovery file (default $BUFFERANY_SERVER_FILE or
        ~/.bufferany/server.json), or to explicit host/port/token. With `start_server`, start one
        when none answers and wait up to `timeout` seconds for it to publish itself."""
        if host is not None or port is not None or token is not None:
            if host is None or port is None or token is None:
                raise ValueError(
                    "give host, port and token together (or none of them, to use the discovery file)"
                )
            return cls(host, port, token, timeout=timeout)
        path = _discovery.resolve_path(discovery)
        try:
            return cls._from_discovery(path, timeout=timeout)
        except ServerNotFoundError:
            if not start_server:
                raise
        return cls._start_and_connect(path, server_command, timeout=timeout)

    @classmethod
    def _from_discovery(cls, path: Path, *, timeout: float) -> Client:
        try:
            info = _discovery.read(path)
        except (
            ServiceError
        ) as exc:  # unusable file: no server can be found through it (a new one replaces it)
            raise ServerNotFoundError(str(exc)) from None
        if info is None:
            raise ServerNotFoundError(
                f"no bufferany-server is running: discovery file {path} does not exist "
                f"(start one with `bufferany-server`, or connect with start_server=True)"
            )
        try:
            return cls(info["host"], info["port"], info["token"], timeout=timeout)
        except ServerNotFoundError as exc:
            alive = _discovery.pid_alive(info["pid"])
            if alive is False:
                raise ServerNotFoundError(
                    f"stale discovery file {path}: server process {info['pid']} is no longer "
                    f"running (it was killed or crashed); start a new server"
                ) from None
            raise ServerNotFoundError(
                f"{exc} (server process {info['pid']} from {path} "
                f"{'is alive but not answering' if alive else 'may have stopped'})"
            ) from None

    @classmethod
    def _start_and_connect(cls, path: Path, server_command: list[str] | None, *, timeout: float) -> Client:
        command = [*(server_command or default_server_command()), "--discovery", str(path)]
        log_path = path.with_name(SERVER_LOG_NAME)
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            log = open(log_path, "ab")
        except OSError as exc:
            raise ServerNotFoundError(f"cannot start a server: cannot write its log {log_path}: {exc}") from None
        with log:
            try:
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log, stderr=log, close_fds=True, **_DETACHED
                )
            except OSError as exc:
                raise ServerNotFoundError(f"cannot start the server with {command}: {exc}") from None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = process.poll()
            if exited is not None and exited != ExitCode.SERVICE:
                raise ServerNotFoundError(
                    f"the server started with {command} exited with code {exited}; "
                    f"its log {log_path} ends with:\n{_tail(log_path)}"
                )
            try:
                info = _discovery.read(path)
            except ServiceError:
                info = None  # being replaced right now
            # Ours once it publishes; or, when ours exited because another server holds this discovery
            # file (two hosts starting one at once), that one.
            if info is not None and (info["pid"] == process.pid or exited is not None):
                try:
                    return cls(info["host"], info["port"], info["token"], timeout=timeout)
                except ServerNotFoundError:
                    pass  # a stale file the winner has not replaced yet
            time.sleep(0.05)
        raise ServerNotFoundError(
            f"the server started with {command} did not publish {path} within {timeout:.0f} s; "
            f"its log {log_path} ends with:\n{_tail(log_path)}"
        )

    # --- requests -----------------------------------------------------------------------------------
    def _request(self, kind: str, **fields: Any) -> dict[str, Any]:
        with self._lock:
            request = next(self._ids)
            self._channel.send({"type": kind, "id": request, **fields})
            reply = self._channel.receive()
        _raise_for(reply)
        if reply.get("id") != request:
            raise ProtocolError(f"server answered request {reply.get('id')!r} while {request} was expected")
        return reply

    def submit(self, job: RenderJob | dict[str, Any]) -> str:
        """Queue a job; returns its id. Relative paths are made absolute here (the server's working
        directory means nothing to the caller). Raises BadArgumentsError for a bad job before sending."""
        return self._request("submit", job=protocol.job_to_wire(job))["job_id"]

    def events(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Every event of a job, from the first (replayed if missed) to the terminal one
        ("finished", "failed" or "cancelled"), each a dict with "type" and "job_id"."""
        channel = _Channel(self.host, self.port, self._token, timeout=self.timeout, client_name=self._name)
        try:
            channel.send({"type": "subscribe", "id": 1, "job_id": job_id})
            _raise_for(channel.receive())
            channel.sock.settimeout(None)  # a queued job may wait long for its turn
            while True:
                message = channel.receive()
                _raise_for(message)
                if message.get("type") != "event" or message.get("job_id") != job_id:
                    continue
                event = {**message["event"], "job_id": job_id}
                yield event
                if event.get("type") in protocol.TERMINAL_EVENTS:
                    return
        finally:
            channel.close()

    def wait(self, job_id: str, on_event: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Block until the job ends; returns its result dict (frames_written, output_pattern, ...).
        Raises JobFailedError or JobCancelledError with the server's message."""
        for event in self.events(job_id):
            if on_event is not None:
                on_event(event)
            kind = event["type"]
            if kind == "finished":
                return event["result"]
            if kind == "failed":
                raise JobFailedError(event["error"], exit_code=event["exit_code"], job_id=job_id)
            if kind == "cancelled":
                raise JobCancelledError(event.get("message") or f"job {job_id} was cancelled", job_id=job_id)
        raise ServiceError(f"the event stream of job {job_id} ended without a result")

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued job at once, or ask a running one to stop at its next window."""
        return self._request("cancel", job_id=job_id)

    def status(self, job_id: str | None = None) -> dict[str, Any]:
        """A job's record (state, progress, result or error) or, without a job id, the server's status."""
        reply = self._request("status", **({} if job_id is None else {"job_id": job_id}))
        return reply["server"] if job_id is None else reply["job"]

    def list_jobs(self) -> list[dict[str, Any]]:
        return self._request("list_jobs")["jobs"]

    def shutdown(self) -> None:
        """Stop the server: queued jobs are cancelled, the running one stops at its next window."""
        self._request("shutdown")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def default_server_command() -> list[str]:
    """How to start a server: $BUFFERANY_SERVER_CMD (a shell-style command line), else
    `bufferany-server` on PATH. Not sys.executable: inside Nuke or Blender that is the host's own
    Python, which has no torch."""
    configured = os.environ.get(SERVER_COMMAND_ENV)
    if configured:
        return shlex.split(configured, posix=os.name != "nt")
    found = shutil.which("bufferany-server")
    if found is None:
        raise ServerNotFoundError(
            f"cannot start a server: `bufferany-server` is not on PATH; set {SERVER_COMMAND_ENV} "
            f"to the command that starts it (e.g. '/opt/bufferany/venv/bin/bufferany-server')"
        )
    return [found]


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
