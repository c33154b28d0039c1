"""Generate and Cancel: render the plate to the cache, run the job on the server, link the passes.

In the GUI the server part runs on a worker thread and every node or knob edit goes back through
`nuke.executeInMainThread`; in `nuke -t` (or `synchronous=True`) the same steps run in the calling
thread and errors are raised. The worker touches no node: it gets plain values read beforehand.

A job in flight belongs to (script, node identity): the node's hidden uuid knob, never its name, so a
renamed node still gets its passes and another script's node never does. Closing the script cancels
its jobs. The worker never waits on the server unboundedly: without an event for a few seconds it
asks for the job's status, and a server that does not answer within the node's timeout fails the job
on the node (the node is free to generate again).
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nuke

from bufferany_core import discovery
from bufferany_core.client import Client, JobCancelledError, JobFailedError, ServerNotFoundError
from bufferany_core.errors import BufferanyError, CancelledError, ServiceError
from bufferany_core.jobs import RenderJob
from bufferany_nuke import cache, colour, node, stale
from bufferany_nuke.settings import Connection, NodeSettings, read_settings, script_name

_POLL_S = 0.1
_QUIET_S = 5.0  # without an event this long, ask the server for the job's status
_RUNNING: dict[tuple[str, str], _Run] = {}  # (script, node identity) -> its job in flight
_STARTED: dict[str, int] = {}  # discovery file -> pid of the server this Nuke process started there
_STARTED_LOCK = threading.Lock()


def generate(group: nuke.Node | None = None, *, synchronous: bool | None = None) -> dict[str, Any] | None:
    """Generate button (main thread). Returns the job's result when synchronous, else None at once.

    Synchronous by default in `nuke -t`, where errors raise the matching BufferanyError.
    """
    group = group if group is not None else nuke.thisNode()
    if not isinstance(group, nuke.Group) or not node.is_bufferany_node(group):
        raise ValueError(f"{group.fullName()} is not a BufferAnytime node")
    sync = (not nuke.GUI) if synchronous is None else synchronous
    if (script_name(), node.node_id(group)) in _RUNNING:
        _set_status(group, "already generating: Cancel first to start again")
        return None
    try:
        if not str(group["updateUI"].value()):  # a node made before the stale badge existed
            group["updateUI"].setValue(node._UPDATE_UI)
        settings = read_settings(group)
        entry = cache.entry_for(group, settings)
        stale.check(group)  # the passes shown until the new ones arrive
        cached = None if settings.force else entry.finished_result(settings.first, settings.last)
        if cached is not None:
            node.link_passes(group, entry.passes_pattern, settings.first, settings.last, keys=(entry.key, entry.plate_key))
            _set_status(group, _done_status("cached: reused passes for", settings, cached))
            return {**cached, "cached": True}
        _render_plate(group, entry, settings)
    except (BufferanyError, ValueError, RuntimeError, OSError) as exc:
        _set_status(group, f"error: {exc}")
        if sync:
            raise
        return None
    _set_status(group, f"submitting frames {settings.first}-{settings.last} to the bufferany server")
    run = _Run(name=group.fullName(), settings=settings, entry=entry, synchronous=sync)
    _RUNNING[settings.run_key] = run
    if sync:
        return run.work()
    threading.Thread(target=run.work, name=f"bufferany {run.name}", daemon=True).start()
    return None


def cancel(group: nuke.Node | None = None) -> None:
    """Cancel button: ask the server to stop this node's job (finished frames stay valid)."""
    group = group if group is not None else nuke.thisNode()
    identity = group.knob(node.NODE_ID)
    run = _RUNNING.get((script_name(), str(identity.value()))) if identity is not None else None
    if run is None:
        _set_status(group, "nothing to cancel")
        return
    run.cancel_requested.set()
    _set_status(group, "cancelling")


def cancel_script_jobs() -> int:
    """onScriptClose: cancel every job the closing script started; they never touch a node again.
    Returns how many were asked to stop."""
    script = script_name()
    runs = [run for key, run in list(_RUNNING.items()) if key[0] == script]
    for run in runs:
        run.detached.set()
        run.cancel_requested.set()
    return len(runs)


def install_callbacks() -> None:
    """Register the onScriptClose callback, once however often it is called (menu.py calls it)."""
    nuke.removeOnScriptClose(cancel_script_jobs)
    nuke.addOnScriptClose(cancel_script_jobs)


def _render_plate(group: nuke.Group, entry: cache.CacheEntry, settings: NodeSettings) -> None:
    """Write the plate frames to the cache (main thread): the input's format, not its bounding box,
    converted to sRGB for the models, half float. Skipped when this upstream state is cached."""
    if not settings.force and entry.plate_ready(settings.first, settings.last):
        return
    plate = group.input(0)
    assert plate is not None
    fmt = plate.format()
    node.internal(group, node.TO_FORMAT)["box"].setValue([0, 0, fmt.width(), fmt.height()])
    assert settings.colour is not None
    colour.apply(node.internal(group, node.TO_SRGB), settings.colour)
    entry.plate_folder.mkdir(parents=True, exist_ok=True)
    write = node.internal(group, node.CACHE_WRITE)
    write["file"].setValue(entry.plate_pattern)
    _set_status(group, f"writing plate frames {settings.first}-{settings.last} to {entry.plate_folder}")
    write["disable"].setValue(False)
    try:
        nuke.execute(write, settings.first, settings.last, 1)
    finally:
        write["disable"].setValue(True)  # so "render all Writes" (nuke -x, F7) never re-renders the cache
    entry.record_plate(settings.first, settings.last)


def _set_status(group: nuke.Node, text: str) -> None:
    group["status"].setValue(text)


@dataclass
class _Run:
    """One Generate: submit, follow events, cancel on request, report back to the node."""

    name: str
    settings: NodeSettings
    entry: cache.CacheEntry
    synchronous: bool
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    detached: threading.Event = field(default_factory=threading.Event)  # its script was closed

    def work(self) -> dict[str, Any] | None:
        task = nuke.ProgressTask(f"BufferAnytime {self.name}")
        task.setMessage("connecting to the bufferany server")
        try:
            result = self._submit_and_wait(task)
            self.entry.record(self.settings.first, self.settings.last, result)
        except (JobCancelledError, CancelledError):
            self._in_main(_finish_status, self.key, "cancelled; finished frames are kept in the cache")
            if self.synchronous:
                raise
            return None
        except BufferanyError as exc:
            self._report_error(f"error: {exc}")
            if self.synchronous:
                raise
            return None
        except Exception as exc:  # a worker thread must never die silently: say what went wrong
            self._report_error(f"error: {type(exc).__name__}: {exc}")
            if self.synchronous:
                raise
            return None
        finally:
            _RUNNING.pop(self.key, None)
        status = _done_status("done:", self.settings, result)
        keys = (self.entry.key, self.entry.plate_key)
        self._in_main(_link, self.key, self.entry.passes_pattern, self.settings.first, self.settings.last, status, keys)
        return result

    @property
    def key(self) -> tuple[str, str]:
        return self.settings.run_key

    def _submit_and_wait(self, task: nuke.ProgressTask) -> dict[str, Any]:
        job = _render_job(self.settings, self.entry)
        with _connect(self.settings.connection) as client:
            job_id = client.submit(job)
            inbox: queue.Queue[tuple[str, Any]] = queue.Queue()
            threading.Thread(
                target=_stream, args=(client, job_id, inbox), name=f"bufferany events {job_id}", daemon=True
            ).start()
            return self._follow(client, job_id, inbox, task)

    def _follow(
        self, client: Client, job_id: str, inbox: queue.Queue[tuple[str, Any]], task: nuke.ProgressTask
    ) -> dict[str, Any]:
        """Events until the job ends; cancel on request; the job's status when the stream is quiet.
        Every request to the server has the connection's timeout, so a hung server ends this."""
        timeout = self.settings.connection.timeout
        quiet = max(1.0, min(_QUIET_S, timeout))
        heard = time.monotonic()
        cancel_deadline: float | None = None
        while True:
            try:
                kind, item = inbox.get(timeout=_POLL_S)
            except queue.Empty:
                kind, item = "", None
            now = time.monotonic()
            if kind == "error":
                raise item
            if kind == "event":
                heard = now
                self._on_event(task, item)
                ended = _ended(item, job_id)
                if ended is not None:
                    return ended
            if cancel_deadline is None and (task.isCancelled() or self.cancel_requested.is_set()):
                task.setMessage("cancelling")
                client.cancel(job_id)
                cancel_deadline = now + timeout
            if cancel_deadline is not None and now > cancel_deadline:
                raise CancelledError(f"job {job_id}: cancelled; the server did not confirm within {timeout:.0f} s")
            if now - heard >= quiet:
                record = client.status(job_id)  # raises ServiceError when the server does not answer
                heard = time.monotonic()
                ended = _ended({**record, "type": record.get("state")}, job_id)
                if ended is not None:
                    return ended

    def _on_event(self, task: nuke.ProgressTask, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "progress":
            task.setProgress(max(0, min(100, int(event.get("percent", 0)))))
            text = f"rendering passes: {event.get('done')}/{event.get('total')} frames"
            task.setMessage(text)
            self._in_main(_finish_status, self.key, text)
        elif kind == "queued":
            task.setMessage("queued on the server")
        elif kind == "log" and event.get("level") == "warning":
            self._in_main(_finish_status, self.key, f"warning: {event.get('message')}")

    def _report_error(self, text: str) -> None:
        self._in_main(_finish_status, self.key, text)
        if nuke.GUI and not self.synchronous and not self.detached.is_set():
            self._in_main(nuke.message, f"BufferAnytime {self.name}\n{text}")

    def _in_main(self, call: Callable[..., Any], *args: Any) -> None:
        if self.detached.is_set():
            return  # the script it belongs to is closed
        if self.synchronous:
            call(*args)
        else:
            nuke.executeInMainThread(call, args)


def _connect(connection: Connection) -> Client:
    """A client for the node's server; a server started here (start server if needed) is remembered,
    so that batch.py can stop it when the task ends (stop_started_servers)."""
    kwargs = connection.connect_kwargs()
    if not kwargs.get("start_server"):
        return Client.connect(**kwargs)
    try:
        return Client.connect(**{**kwargs, "start_server": False})
    except ServerNotFoundError:
        client = Client.connect(**kwargs)
    path = discovery.resolve_path(kwargs.get("discovery"))
    try:
        info = discovery.read(path)
    except ServiceError:
        info = None
    if info is not None:
        with _STARTED_LOCK:
            _STARTED[str(path)] = int(info["pid"])
    return client


def stop_started_servers(*, timeout: float = 30.0) -> list[str]:
    """Shut down the servers this Nuke process started (batch.py calls it when the task ends), unless
    another client is using one (it has its own jobs queued or running, or others are connected: it
    then stops by itself after --idle-exit). Returns a line per server saying what was done."""
    with _STARTED_LOCK:
        started = dict(_STARTED)
        _STARTED.clear()
    said: list[str] = []
    for path, pid in started.items():
        try:
            info = discovery.read(Path(path))
            if info is None or int(info["pid"]) != pid:
                continue  # already gone (idle exit, killed), or replaced by someone else's
            with Client.connect(path, timeout=timeout) as client:
                if not _unused(client):
                    said.append(f"left the server it started (pid {pid}) running: other clients use it")
                    continue
                client.shutdown()
            _wait_gone(Path(path), pid, timeout=_SHUTDOWN_WAIT_S)
            said.append(f"stopped the server it started (pid {pid})")
        except BufferanyError as exc:
            said.append(f"could not stop the server it started (pid {pid}): {exc}")
    return said


_SHUTDOWN_WAIT_S = 40.0  # the server gives a running job 30 s to stop, then removes its discovery file


def _wait_gone(path: Path, pid: int, *, timeout: float) -> None:
    """Until the server has removed its discovery file (so the task ends after the GPU is free)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            info = discovery.read(path)
        except ServiceError:
            info = None
        if info is None or int(info["pid"]) != pid:
            return
        time.sleep(0.1)


def _unused(client: Client, *, settle_s: float = 3.0) -> bool:
    """No job queued or running, and no client connected but this one (a job's event stream that just
    ended may take a moment to close: wait that long for it)."""
    deadline = time.monotonic() + settle_s
    while True:
        status = client.status()
        if status.get("running") or status.get("queued"):
            return False
        if int(status.get("connections", 0)) <= 1:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _stream(client: Client, job_id: str, inbox: queue.Queue[tuple[str, Any]]) -> None:
    """The job's events into `inbox` (its own connection; abandoned when the server hangs)."""
    try:
        for event in client.events(job_id):
            inbox.put(("event", event))
    except BaseException as exc:  # noqa: BLE001 (handed to the worker, which reports it)
        inbox.put(("error", exc))


def _ended(event: dict[str, Any], job_id: str) -> dict[str, Any] | None:
    """The result of a terminal event or job record; raises for a failed or cancelled job."""
    kind = event.get("type")
    if kind == "finished":
        result = event.get("result")
        if not isinstance(result, dict):
            raise ServiceError(f"job {job_id} finished without a result")
        return result
    if kind == "failed":
        raise JobFailedError(str(event.get("error")), exit_code=int(event.get("exit_code") or 1), job_id=job_id)
    if kind == "cancelled":
        raise JobCancelledError(str(event.get("message") or f"job {job_id} was cancelled"), job_id=job_id)
    return None


def _render_job(settings: NodeSettings, entry: cache.CacheEntry) -> RenderJob:
    return RenderJob(
        **settings.job,
        input=entry.plate_pattern,
        output=entry.passes_pattern,
        frames=f"{settings.first}-{settings.last}",
        overwrite=settings.force,  # a resumed render keeps the frames a cancelled one finished
    )


def _done_status(prefix: str, settings: NodeSettings, result: dict[str, Any]) -> str:
    untrained = " (UNTRAINED weights: test output)" if result.get("untrained") else ""
    return f"{prefix} frames {settings.first}-{settings.last}{untrained}"


def _lookup(key: tuple[str, str]) -> nuke.Group | None:
    """The node a job belongs to, in the open script only (deleted, or another script: None)."""
    script, identity = key
    if script_name() != script:
        return None
    return node.find_by_id(identity)


def _finish_status(key: tuple[str, str], text: str) -> None:
    group = _lookup(key)
    if group is not None:
        _set_status(group, text)


def _link(
    key: tuple[str, str], passes_pattern: str, first: int, last: int, status: str, keys: tuple[str, str]
) -> None:
    group = _lookup(key)
    if group is not None:
        node.link_passes(group, passes_pattern, first, last, keys=keys)
        _set_status(group, status)
