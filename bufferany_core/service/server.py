"""`bufferany-server`: an asyncio loop serving many clients, one GPU worker thread behind a job queue.

Every connection starts with `hello` carrying the token from the discovery file; every message is
size-limited and validated; a bad message gets an `error` reply and the server keeps serving.
docs/protocol.md is the reference for what travels on the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import queue
import secrets
import signal
import socket
import time
from collections import deque
from pathlib import Path
from typing import Any

import bufferany_core
from bufferany_core import discovery, protocol
from bufferany_core.errors import BadArgumentsError, BufferanyError
from bufferany_core.frames.framespec import count_frames
from bufferany_core.jobs import RenderJob
from bufferany_core.models.catalog import CATALOGUES, DEFAULT_MODELS
from bufferany_core.protocol import ProtocolError, error_message
from bufferany_core.service.worker import Job, Worker, check_paths

log = logging.getLogger("bufferany.server")

HELLO_TIMEOUT_S = 3.0  # an unauthenticated connection must have said hello within this time
MAX_HELLO_BYTES = 4096  # the body of `hello` (a token, a version, a client name): read no more before auth
MAX_CONNECTIONS = 64  # authenticated connections; unauthenticated ones never take these slots
MAX_PENDING = 32  # connections that have not said hello yet; past it the oldest is dropped
MAX_SEND_BUFFER = 8 << 20  # a subscriber this far behind is dropped, never waited for
MAX_HISTORY = 10_000  # events kept per job, replayed to late subscribers
MAX_JOBS_KEPT = 1000  # ended job records kept for status/list_jobs
MAX_QUEUED = 256  # jobs waiting at once, all clients together (--max-queue)
MAX_QUEUED_PER_CLIENT = 64  # jobs waiting at once for one client name (--max-queue-per-client)
MAX_FRAMES = 100_000  # frames a job may name (--max-frames), counted without listing them
MAX_IMAGE_PIXELS = 8192 * 8192  # width x height of a plate, from its header (--max-image-pixels)
LIST_PAGE_BYTES = 900_000  # a list_jobs page stays under the message limit
FULL_HISTORY_JOBS = 50  # ended jobs whose every event is kept; older ones keep their terminal event
SHUTDOWN_GRACE_S = 30.0  # how long a running job gets to stop at a window boundary
FATAL_CODES = ("bad_frame", "too_large")  # the byte stream cannot be trusted after these


def _encode(message: dict[str, Any]) -> bytes:
    """Encode a reply or event; a pipeline event that is not plain JSON (a Path, a numpy float) is
    sent with such values as strings, and one that still cannot travel is replaced by a note saying why."""
    try:
        return protocol.encode(message)
    except (TypeError, ValueError, ProtocolError) as first:
        try:
            return protocol.encode(json.loads(json.dumps(message, default=str)))
        except (TypeError, ValueError, ProtocolError) as exc:
            log.warning("cannot send a %s message: %s (first: %s)", message.get("type"), exc, first)
            if message.get("type") == "event":
                kind = message["event"].get("type")
                note = {"type": kind, "message": f"this {kind} event could not be encoded: {exc}"}
                return protocol.encode({**message, "event": note})
            return protocol.encode(
                error_message(
                    f"the reply could not be encoded: {exc}", code="internal", request=message.get("id")
                )
            )


class Connection:
    """One client socket. Writes never block the loop: a client that stops reading is dropped."""

    def __init__(self, writer: asyncio.StreamWriter):
        self.writer = writer
        self.client: str | None = None
        self.hello_id: int | str | None = None
        self.closed = False

    def send(self, message: dict[str, Any]) -> None:
        self.send_bytes(_encode(message))

    def send_bytes(self, data: bytes) -> None:
        if self.closed:
            return
        self.writer.write(data)
        if self.writer.transport.get_write_buffer_size() > MAX_SEND_BUFFER:
            log.warning("dropping client %s: it stopped reading its events", self.client)
            self.close()

    async def reply(self, message: dict[str, Any]) -> None:
        self.send(message)
        if not self.closed:
            await self.writer.drain()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.writer.close()


class Server:
    """Owns the listening socket, the job table and the worker; `run()` serves until stopped."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        device: str = "auto",
        discovery_path: Path,
        allowed_roots: list[str] | tuple[str, ...] = (),
        max_models: int = 4,
        max_queue: int = MAX_QUEUED,
        max_queue_per_client: int = MAX_QUEUED_PER_CLIENT,
        max_frames: int = MAX_FRAMES,
        max_image_pixels: int = MAX_IMAGE_PIXELS,
        idle_exit: float | None = None,
    ):
        self.host = host
        self.idle_exit = idle_exit  # seconds without clients or jobs before a clean shutdown (None: never)
        self.max_queue, self.max_queue_per_client = max_queue, max_queue_per_client
        self.max_frames, self.max_image_pixels = max_frames, max_image_pixels
        self.port = port
        self.device = device
        self.discovery_path = discovery_path
        self.max_models = max_models
        self.allowed_roots = [os.path.realpath(os.path.expanduser(root)) for root in allowed_roots]
        self.token = secrets.token_urlsafe(32)
        self.jobs: dict[str, Job] = {}
        self.history: dict[str, deque[dict[str, Any]]] = {}
        self.subscribers: dict[str, set[Connection]] = {}
        self.connections: set[Connection] = set()  # authenticated
        self.pending: dict[Connection, None] = {}  # not yet authenticated, oldest first
        self._handlers: set[asyncio.Task[None]] = set()  # one per open connection
        self.queue: queue.Queue[Job | None] = queue.Queue()
        self.worker = Worker(
            self.queue,
            emit=self._emit_from_worker,
            device=device,
            max_models=max_models,
            allowed_roots=tuple(self.allowed_roots),
            max_frames=max_frames,
            max_image_pixels=max_image_pixels,
        )
        self.started_at = time.time()
        self._loop: asyncio.AbstractEventLoop | None = None  # set by run(); the worker posts events to it
        self._stop = asyncio.Event()

    # --- life cycle ---------------------------------------------------------------------------------
    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        listener = await asyncio.start_server(
            self._serve_connection, self.host, self.port, limit=protocol.MAX_MESSAGE_BYTES
        )
        self.port = listener.sockets[0].getsockname()[1]
        self._install_signal_handlers()
        self.worker.start()
        try:
            discovery.write(
                self.discovery_path,
                {
                    "host": self.host,
                    "port": self.port,
                    "pid": os.getpid(),
                    "token": self.token,
                    "protocol": protocol.PROTOCOL_VERSION,
                    "version": bufferany_core.__version__,
                },
            )
            log.info(
                "bufferany-server %s listening on %s:%d (pid %d), discovery file %s, allowed roots: %s",
                bufferany_core.__version__,
                self.host,
                self.port,
                os.getpid(),
                self.discovery_path,
                ", ".join(self.allowed_roots) or "none (every job is rejected)",
            )
            idle_watch = asyncio.ensure_future(self._watch_idle()) if self.idle_exit else None
            await self._stop.wait()
            if idle_watch is not None:
                idle_watch.cancel()
            log.info("shutting down")
            listener.close()
            await self._drain_jobs()
        finally:
            discovery.remove_if_owned(self.discovery_path, os.getpid())
            for connection in list(self.connections):
                connection.close()
            listener.close()
            if self._handlers:  # let them see their sockets close rather than be cancelled mid-read
                await asyncio.wait(list(self._handlers), timeout=2.0)
        log.info("stopped")

    def request_stop(self) -> None:
        self._stop.set()

    def idle(self) -> bool:
        """No authenticated client connected and no job queued or running. (Connections that never
        said hello do not count: a port scan must not keep a farm task's server alive.)"""
        return not self.connections and not any(job.state in ("queued", "running") for job in self.jobs.values())

    async def _watch_idle(self) -> None:
        """--idle-exit: stop once the server has been idle for that long (a server started for a farm
        task, whose host went away without shutting it down, frees the GPU and its discovery file)."""
        assert self.idle_exit is not None
        limit = self.idle_exit
        step = min(1.0, max(0.05, limit / 4))
        idle_since: float | None = None
        while not self._stop.is_set():
            await asyncio.sleep(step)
            now = time.monotonic()
            if not self.idle():
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since >= limit:
                log.info("idle for %.0f s (no clients, no jobs): shutting down (--idle-exit)", now - idle_since)
                self.request_stop()
                return

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(signum, self.request_stop)
            except (NotImplementedError, RuntimeError):  # Windows event loops
                signal.signal(signum, lambda *_: loop.call_soon_threadsafe(self.request_stop))

    async def _drain_jobs(self) -> None:
        """Cancel what waits, ask the running job to stop at its next window, let the worker end."""
        for job in list(self.jobs.values()):
            self._cancel(job, reason="the server is shutting down")
        self.queue.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self.worker.join, SHUTDOWN_GRACE_S)
        if self.worker.is_alive():
            log.warning("the running job did not stop within %.0f s; exiting anyway", SHUTDOWN_GRACE_S)
        await asyncio.sleep(0)  # let the worker's last events reach the loop before sockets close
        for connection in list(self.connections):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await asyncio.wait_for(connection.writer.drain(), 1.0)

    # --- events -------------------------------------------------------------------------------------
    def _emit_from_worker(self, job: Job, event: dict[str, Any]) -> None:
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # loop already closed during a forced exit
            self._loop.call_soon_threadsafe(self._publish, job, event)

    def _publish(self, job: Job, event: dict[str, Any]) -> None:
        """Record an event in the job's history and send it to every subscriber (loop thread only)."""
        if job.id not in self.jobs:  # already forgotten (only ended jobs are)
            return
        kind = event.get("type")
        if kind in protocol.TERMINAL_EVENTS:
            # The job turns terminal here, in the loop step that publishes its terminal event: a
            # subscriber arriving in between would see it ended, yet find no terminal event to replay.
            job.finish(event)
        elif kind == "progress":
            job.progress = float(event.get("percent", job.progress))
        elif kind in ("frame_done", "frame_skipped"):
            job.frames_done += 1
        history = self.history[job.id]
        if kind == "progress" and history and history[-1].get("type") == "progress":
            history[-1] = event  # late subscribers need the latest progress, not every step
        else:
            history.append(event)
        data = _encode({"type": "event", "job_id": job.id, "event": event})  # once for every subscriber
        for connection in list(self.subscribers.get(job.id, ())):
            connection.send_bytes(data)
        if kind in protocol.TERMINAL_EVENTS:
            self.subscribers.pop(job.id, None)
            self._forget_old_jobs()

    def _forget_old_jobs(self) -> None:
        """Bound the memory a long-lived server spends on jobs that have ended."""
        ended = [job for job in self.jobs.values() if job.terminal]
        for job in ended[: max(0, len(ended) - MAX_JOBS_KEPT)]:
            del self.jobs[job.id]
            self.history.pop(job.id, None)
        for job in ended[max(0, len(ended) - MAX_JOBS_KEPT) : max(0, len(ended) - FULL_HISTORY_JOBS)]:
            history = self.history[job.id]
            if len(history) > 1 and history[-1].get("type") in protocol.TERMINAL_EVENTS:
                self.history[job.id] = deque([history[-1]], maxlen=MAX_HISTORY)

    def _cancel(self, job: Job, *, reason: str) -> str:
        previous = job.cancel()
        if previous == "queued":
            self._publish(job, {"type": "cancelled", "message": reason})
        return previous

    # --- connections --------------------------------------------------------------------------------
    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(writer)
        handler = asyncio.current_task()
        assert handler is not None  # asyncio runs each connection's handler as a task
        self._handlers.add(handler)
        try:
            if self._stop.is_set():
                await connection.reply(error_message("the server is shutting down", code="busy"))
                return
            # An idle flood must not lock authenticated clients out: unauthenticated connections have
            # their own bounded pool (the oldest is dropped for a newcomer) and never take the slots
            # of authenticated ones; each must say hello within HELLO_TIMEOUT_S anyway.
            self.pending[connection] = None
            while len(self.pending) > MAX_PENDING:
                oldest = next(iter(self.pending))
                del self.pending[oldest]
                oldest.close()
            if not await self._handshake(reader, connection):
                return
            self.pending.pop(connection, None)
            if len(self.connections) >= MAX_CONNECTIONS:
                await connection.reply(
                    error_message(
                        f"too many connections (limit {MAX_CONNECTIONS})", code="busy", request=connection.hello_id
                    )
                )
                return
            self.connections.add(connection)
            await self._send_welcome(connection)
            await self._converse(reader, connection)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.TimeoutError, OSError):
            pass  # the client went away (or never said hello): nothing to answer
        finally:
            self._handlers.discard(handler)
            self.pending.pop(connection, None)
            self.connections.discard(connection)
            for subscribers in self.subscribers.values():
                subscribers.discard(connection)
            connection.close()

    async def _read(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        length = protocol.body_length(await reader.readexactly(protocol.HEADER.size))
        return protocol.decode(await reader.readexactly(length))

    async def _read_hello(self, reader: asyncio.StreamReader) -> dict[str, Any]:
        length = protocol.body_length(await reader.readexactly(protocol.HEADER.size))
        if length > MAX_HELLO_BYTES:
            raise ProtocolError(
                f"the first message is {length} bytes; before authentication at most {MAX_HELLO_BYTES} are read",
                code="too_large",
            )
        return protocol.decode(await reader.readexactly(length))

    async def _handshake(self, reader: asyncio.StreamReader, connection: Connection) -> bool:
        try:
            message = await asyncio.wait_for(self._read_hello(reader), HELLO_TIMEOUT_S)
            if message.get("type") != "hello":
                raise ProtocolError("the first message must be 'hello' with the server's token", code="auth")
            protocol.validate_request(message)
        except ProtocolError as exc:
            await connection.reply(
                error_message(str(exc), code=exc.code if exc.code != "bad_request" else "auth")
            )
            return False
        request = message["id"]
        if not hmac.compare_digest(message["token"].encode("utf-8"), self.token.encode("utf-8")):
            log.warning("refused a client with a wrong token")
            await connection.reply(
                error_message(
                    "wrong token: read it from the server's discovery file", code="auth", request=request
                )
            )
            return False
        if message["protocol"] != protocol.PROTOCOL_VERSION:
            await connection.reply(
                error_message(
                    f"protocol version {message['protocol']} is not supported; this server speaks {protocol.PROTOCOL_VERSION}",
                    code="version",
                    request=request,
                    protocol=protocol.PROTOCOL_VERSION,
                )
            )
            return False
        connection.client = message.get("client")
        connection.hello_id = request
        return True

    async def _send_welcome(self, connection: Connection) -> None:
        await connection.reply(
            {
                "type": "welcome",
                "id": connection.hello_id,
                "protocol": protocol.PROTOCOL_VERSION,
                "version": bufferany_core.__version__,
                "pid": os.getpid(),
            }
        )

    async def _converse(self, reader: asyncio.StreamReader, connection: Connection) -> None:
        while not connection.closed:
            message: dict[str, Any] | None = None
            try:
                message = await self._read(reader)
                protocol.validate_request(message)
            except ProtocolError as exc:
                request = protocol.request_id(message) if message is not None else None
                await connection.reply(error_message(str(exc), code=exc.code, request=request))
                if exc.code in FATAL_CODES:
                    return
                continue
            reply = self._answer(message, connection)
            # Reply, replay and subscription happen in one loop step, so no live event slips in between.
            connection.send(reply)
            if reply.get("subscribed"):
                self._replay(reply["job"]["job_id"], connection)
            if not connection.closed:
                await connection.writer.drain()

    def _answer(self, message: dict[str, Any], connection: Connection) -> dict[str, Any]:
        """The reply to a well-formed request: its result, or an error saying why not."""
        request = message["id"]
        try:
            return self._dispatch(message, connection)
        except ProtocolError as exc:
            return error_message(str(exc), code=exc.code, request=request)
        except BufferanyError as exc:  # a job the server will not run: the same exit code as the CLI's
            return error_message(str(exc), code="rejected", request=request, exit_code=int(exc.exit_code))
        except Exception as exc:  # a server bug: still answer, and keep serving
            log.error("internal error answering a %s request: %s: %s", message["type"], type(exc).__name__, exc)
            log.debug("traceback of that internal error", exc_info=True)
            return error_message(
                f"internal error: {type(exc).__name__}: {exc}", code="internal", request=request
            )

    # --- requests -----------------------------------------------------------------------------------
    def _dispatch(self, message: dict[str, Any], connection: Connection) -> dict[str, Any]:
        kind, request = message["type"], message["id"]
        if kind == "hello":
            raise ProtocolError("already authenticated: send 'hello' once per connection")
        if kind == "submit":
            submitted = self._submit(protocol.job_from_wire(message["job"]), client=connection.client)
            return {"type": "result", "id": request, "job_id": submitted.id, "state": submitted.state}
        if kind == "list_jobs":
            return self._list_jobs(message)
        if kind == "shutdown":
            log.info("shutdown requested by client %s", connection.client)
            self.request_stop()  # the reply still goes out: the loop stops serving only after this step
            return {"type": "result", "id": request, "stopping": True}
        if kind == "status" and "job_id" not in message:
            return {"type": "result", "id": request, "server": self.status()}
        job = self.jobs.get(message["job_id"])
        if job is None:
            raise ProtocolError(f"no job with id {message['job_id']!r} on this server", code="unknown_job")
        if kind == "cancel":
            previous = self._cancel(job, reason="cancelled by a client before it started")
            return {
                "type": "result",
                "id": request,
                "job_id": job.id,
                "previous_state": previous,
                "state": job.state,
            }
        if kind == "subscribe":
            if not job.terminal:
                self.subscribers.setdefault(job.id, set()).add(connection)
            return {"type": "result", "id": request, "job": job.record(), "subscribed": True}
        return {"type": "result", "id": request, "job": job.record()}

    def _replay(self, job_id: str, connection: Connection) -> None:
        """Events a subscriber missed, in order; live ones follow (same loop, so nothing slips between)."""
        for event in self.history.get(job_id, ()):
            connection.send({"type": "event", "job_id": job_id, "event": event})

    def _list_jobs(self, message: dict[str, Any]) -> dict[str, Any]:
        """One page of job records, oldest first: from `offset` (default 0), at most `limit` (default:
        as many as fit in one message); `next_offset` is where the next page starts, null at the end."""
        jobs = list(self.jobs.values())
        offset = message.get("offset", 0)
        limit = message.get("limit", len(jobs) or 1)
        if offset < 0 or limit < 1:
            raise ProtocolError("list_jobs: 'offset' must be 0 or more and 'limit' 1 or more")
        page: list[dict[str, Any]] = []
        size = 200
        for job in jobs[offset : offset + limit]:
            record = job.record()
            size += len(_encode(record)) + 1
            if page and size > LIST_PAGE_BYTES:
                break
            page.append(record)
        end = offset + len(page)
        return {
            "type": "result",
            "id": message["id"],
            "jobs": page,
            "total": len(jobs),
            "next_offset": end if end < len(jobs) else None,
        }

    def _check_limits(self, spec: RenderJob, client: str | None) -> None:
        """Refusals decided cheaply on the loop: frame counts (never a list of frames) and queue room."""
        for name in ("frames", "shot_range"):
            value = getattr(spec, name)
            if value is not None and "<" not in value:  # farm tokens are refused by the render itself
                count = count_frames(value)
                if count > self.max_frames:
                    raise BadArgumentsError(
                        f"job field {name!r} names {count} frames; this server takes at most {self.max_frames} per job"
                    )
        waiting = [job for job in self.jobs.values() if job.state == "queued"]
        if len(waiting) >= self.max_queue:
            raise ProtocolError(
                f"queue full: {len(waiting)} jobs are waiting (limit {self.max_queue}); submit again later",
                code="queue_full",
            )
        mine = sum(job.client == client for job in waiting)
        if mine >= self.max_queue_per_client:
            raise ProtocolError(
                f"queue full for client {client!r}: {mine} of its jobs are waiting (limit "
                f"{self.max_queue_per_client}); submit again later",
                code="queue_full",
            )

    def _submit(self, spec: RenderJob, *, client: str | None) -> Job:
        if self._stop.is_set():
            raise ProtocolError("the server is shutting down and takes no new jobs", code="shutting_down")
        check_paths(spec, self.allowed_roots)
        self._check_limits(spec, client)
        ahead = sum(job.state in ("queued", "running") for job in self.jobs.values())
        job = Job(secrets.token_hex(8), spec, client=client)
        self.jobs[job.id] = job
        self.history[job.id] = deque(maxlen=MAX_HISTORY)
        self._publish(job, {"type": "queued", "jobs_ahead": ahead})
        self.queue.put(job)
        log.info("job %s queued by %s: %s", job.id, client, spec.input)
        return job

    def status(self) -> dict[str, Any]:
        running = [job.id for job in self.jobs.values() if job.state == "running"]
        predictors = self.worker.predictors
        return {
            "pid": os.getpid(),
            "version": bufferany_core.__version__,
            "protocol": protocol.PROTOCOL_VERSION,
            "host": self.host,
            "port": self.port,
            "hostname": socket.gethostname(),
            "device": self.device,
            "allowed_roots": self.allowed_roots,
            "uptime_s": time.time() - self.started_at,
            "running": running[0] if running else None,
            "queued": sum(job.state == "queued" for job in self.jobs.values()),
            "jobs_run": self.worker.jobs_run,
            "connections": len(self.connections),
            "pending_connections": len(self.pending),
            "pipeline_loaded": predictors is not None,
            "models_loaded": [] if predictors is None else predictors.describe(),
            "model_loads": 0 if predictors is None else predictors.loads,
            "max_models": self.max_models,
            "max_queue": self.max_queue,
            "max_queue_per_client": self.max_queue_per_client,
            "max_frames": self.max_frames,
            "max_image_pixels": self.max_image_pixels,
            "idle_exit": self.idle_exit,
            # what a host offers in its model menus: every catalogue name per pass (the official ones
            # load when their weights are on this machine, `bufferany-models list` says which)
            "available_models": {p: list(entries) for p, entries in CATALOGUES.items()},
            "default_models": dict(DEFAULT_MODELS),
        }
