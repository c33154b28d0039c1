"""One job on the server, driven from a worker thread so that Blender's UI never waits on the network.

The worker connects, submits and follows the job's events; the main thread (the operator's timer)
drains them with `poll()` and may `cancel()` at any time. Nothing here touches bpy.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from .core import client as _client
from .core import errors as _errors
from .core import protocol as _protocol

# Terminal messages of a session, after the server's own terminal events.
ERROR = "error"  # could not talk to the server, or it refused the job: {"message", "exit_code"}


class JobSession:
    """Submit `job` (a dict of RenderJob fields) to the server `connect` describes (keyword arguments
    of `Client.connect`), on a daemon thread. `poll()` returns the events received since the last
    call; the last one of a session is "finished", "failed", "cancelled" or ERROR."""

    def __init__(self, job: dict[str, Any], connect: dict[str, Any]):
        self.job = dict(job)
        self.connect = dict(connect)
        self.job_id: str | None = None
        self.done = False
        self._events: queue.Queue[dict[str, Any]] = queue.Queue()
        self._client: Any = None
        self._cancel_requested = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bufferany-job", daemon=True)

    def start(self) -> JobSession:
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            with _client.Client.connect(**self.connect) as connection:
                self._client = connection
                self.job_id = connection.submit(self.job)
                if self._cancel_requested.is_set():
                    connection.cancel(self.job_id)
                for event in connection.events(self.job_id):
                    self._events.put(event)
        except _errors.BufferanyError as exc:
            self._events.put({"type": ERROR, "message": str(exc), "exit_code": int(exc.exit_code)})
        except Exception as exc:  # a bug must still end the session, not leave the UI waiting
            self._events.put({"type": ERROR, "message": f"{type(exc).__name__}: {exc}", "exit_code": 1})

    def poll(self) -> list[dict[str, Any]]:
        events = []
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return events
            events.append(event)
            if event["type"] in (*_protocol.TERMINAL_EVENTS, ERROR):
                self.done = True

    def cancel(self) -> None:
        """Ask the server to stop the job (at its next window); the session then ends "cancelled".
        Sent from its own thread: the server is never waited for on Blender's main thread."""
        self._cancel_requested.set()
        connection, job_id = self._client, self.job_id
        if connection is not None and job_id is not None:
            threading.Thread(target=self._send_cancel, args=(connection, job_id), daemon=True).start()

    def _send_cancel(self, connection: Any, job_id: str) -> None:
        try:
            connection.cancel(job_id)
        except _errors.BufferanyError as exc:
            self._events.put({"type": "log", "level": "warning", "message": f"cancel failed: {exc}"})

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)
