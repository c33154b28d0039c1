"""Generate and Cancel: render the plate to the cache, run the job on the server, link the passes.

In the GUI the server part runs on a worker thread and every node or knob edit goes back through
`nuke.executeInMainThread`; in `nuke -t` (or `synchronous=True`) the same steps run in the calling
thread and errors are raised. The worker touches no node: it gets plain values read beforehand.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import nuke

from bufferany_core.client import Client, JobCancelledError
from bufferany_core.errors import BufferanyError, CancelledError
from bufferany_core.jobs import RenderJob
from bufferany_nuke import cache, node
from bufferany_nuke.settings import NodeSettings, read_settings

_CANCEL_POLL_S = 0.1
_RUNNING: dict[str, _Run] = {}  # node full name -> its job in flight (one per node)


def generate(group: nuke.Node | None = None, *, synchronous: bool | None = None) -> dict[str, Any] | None:
    """Generate button (main thread). Returns the job's result when synchronous, else None at once.

    Synchronous by default in `nuke -t`, where errors raise the matching BufferanyError.
    """
    group = group if group is not None else nuke.thisNode()
    if not isinstance(group, nuke.Group) or not node.is_bufferany_node(group):
        raise ValueError(f"{group.fullName()} is not a BufferAnytime node")
    sync = (not nuke.GUI) if synchronous is None else synchronous
    name = group.fullName()
    if name in _RUNNING:
        _set_status(group, "already generating: Cancel first to start again")
        return None
    try:
        settings = read_settings(group)
        entry = cache.entry_for(group, settings)
        cached = None if settings.force else entry.finished_result(settings.first, settings.last)
        if cached is not None:
            node.link_passes(group, entry.passes_pattern, settings.first, settings.last)
            _set_status(group, _done_status("cached: reused passes for", settings, cached))
            return {**cached, "cached": True}
        _render_plate(group, entry, settings)
    except (BufferanyError, ValueError, RuntimeError, OSError) as exc:
        _set_status(group, f"error: {exc}")
        if sync:
            raise
        return None
    run = _Run(name=name, settings=settings, entry=entry, synchronous=sync)
    _RUNNING[name] = run
    if sync:
        return run.work()
    threading.Thread(target=run.work, name=f"bufferany {name}", daemon=True).start()
    return None


def cancel(group: nuke.Node | None = None) -> None:
    """Cancel button: ask the server to stop this node's job (finished frames stay valid)."""
    group = group if group is not None else nuke.thisNode()
    run = _RUNNING.get(group.fullName())
    if run is None:
        _set_status(group, "nothing to cancel")
        return
    run.cancel_requested.set()
    _set_status(group, "cancelling")


def _render_plate(group: nuke.Group, entry: cache.CacheEntry, settings: NodeSettings) -> None:
    """Write the plate frames to the cache as float EXR through the internal Write (main thread)."""
    entry.folder.mkdir(parents=True, exist_ok=True)
    write = node.internal(group, node.CACHE_WRITE)
    write["file"].setValue(entry.plate_pattern)
    _set_status(group, f"writing plate frames {settings.first}-{settings.last} to {entry.folder}")
    write["disable"].setValue(False)
    try:
        nuke.execute(write, settings.first, settings.last, 1)
    finally:
        write["disable"].setValue(True)  # so "render all Writes" (nuke -x, F7) never re-renders the cache


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
    _finished: threading.Event = field(default_factory=threading.Event)

    def work(self) -> dict[str, Any] | None:
        task = nuke.ProgressTask(f"BufferAnytime {self.name}")
        task.setMessage("connecting to the bufferany server")
        try:
            result = self._submit_and_wait(task)
            self.entry.record(self.settings.first, self.settings.last, result)
        except (JobCancelledError, CancelledError):
            self._in_main(_finish_status, self.name, "cancelled; finished frames are kept in the cache")
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
            self._finished.set()
            _RUNNING.pop(self.name, None)
        status = _done_status("done:", self.settings, result)
        self._in_main(
            _link, self.name, self.entry.passes_pattern, self.settings.first, self.settings.last, status
        )
        return result

    def _submit_and_wait(self, task: nuke.ProgressTask) -> dict[str, Any]:
        job = _render_job(self.settings, self.entry)
        with Client.connect(**self.settings.connection.connect_kwargs()) as client:
            job_id = client.submit(job)
            threading.Thread(target=self._watch_cancel, args=(task, job_id), daemon=True).start()

            def on_event(event: dict[str, Any]) -> None:
                self._on_event(task, event)

            return client.wait(job_id, on_event=on_event)

    def _on_event(self, task: nuke.ProgressTask, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "progress":
            task.setProgress(int(event.get("percent", 0)))
            text = f"rendering passes: {event.get('done')}/{event.get('total')} frames"
            task.setMessage(text)
            self._in_main(_finish_status, self.name, text)
        elif kind == "queued":
            task.setMessage("queued on the server")
        elif kind == "log" and event.get("level") == "warning":
            self._in_main(_finish_status, self.name, f"warning: {event.get('message')}")

    def _watch_cancel(self, task: nuke.ProgressTask, job_id: str) -> None:
        """Poll the progress bar's cancel and the Cancel button; tell the server on a connection of its own."""
        while not self._finished.wait(_CANCEL_POLL_S):
            if task.isCancelled() or self.cancel_requested.is_set():
                try:
                    with Client.connect(**self.settings.connection.connect_kwargs()) as client:
                        client.cancel(job_id)
                except BufferanyError as exc:
                    text = f"error: cannot cancel job {job_id}: {exc}"
                    if self.synchronous:  # never touch the node from this thread; batch has stderr
                        print(f"BufferAnytime {self.name}: {text}", file=sys.stderr)
                    else:
                        self._report_error(text)
                return

    def _report_error(self, text: str) -> None:
        self._in_main(_finish_status, self.name, text)
        if nuke.GUI and not self.synchronous:
            self._in_main(nuke.message, f"BufferAnytime {self.name}\n{text}")

    def _in_main(self, call: Callable[..., Any], *args: Any) -> None:
        if self.synchronous:
            call(*args)
        else:
            nuke.executeInMainThread(call, args)


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


def _lookup(name: str) -> nuke.Group | None:
    found = nuke.toNode(name)
    return found if isinstance(found, nuke.Group) else None


def _finish_status(name: str, text: str) -> None:
    group = _lookup(name)  # the node may have been deleted while the job ran
    if group is not None:
        _set_status(group, text)


def _link(name: str, passes_pattern: str, first: int, last: int, status: str) -> None:
    group = _lookup(name)
    if group is not None:
        node.link_passes(group, passes_pattern, first, last)
        _set_status(group, status)
