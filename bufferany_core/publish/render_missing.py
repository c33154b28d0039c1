"""Render an instance's missing frames through the bufferany service, the `bufferany-render` CLI, or a
host's own renderer (registered by its collector: the Nuke node's Generate).

Standard library only: runs inside Nuke, Blender or any pyblish host. The whole instance range is
passed as the shot range, so frames rendered later share the scale and shift of those already there.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from typing import Any

from bufferany_core.client import Client
from bufferany_core.errors import BadArgumentsError, error_for_exit_code
from bufferany_core.jobs import PASSES, RenderJob, render_arguments
from bufferany_core.publish import instances as keys

METHODS = ("cli", "service")  # built in; hosts add theirs with register_host_renderer
# render(instance, *, overwrite, changes) -> the job's result: renders the instance's whole range
HostRenderer = Callable[..., dict[str, Any]]
_HOST_RENDERERS: dict[str, HostRenderer] = {}
DEFAULT_COMMAND = ("bufferany-render",)
_STDERR_LINES = 20


def job_for(
    instance: Any, frames: list[int], *, overwrite: bool = False, changes: dict[str, Any] | None = None
) -> RenderJob:
    """The RenderJob that renders `frames` of `instance` into its output sequence: the context's
    `renderJob` fields, the instance's on top, then `changes`."""
    shot = keys.frame_range(instance)
    extra = {
        **(instance.context.data.get(keys.RENDER_JOB) or {}),  # studio defaults
        **(instance.data.get(keys.RENDER_JOB) or {}),
        **(changes or {}),
    }
    reserved = {"input", "output", "frames", "shot_range", "passes", "overwrite"} & set(extra)
    if reserved:
        raise BadArgumentsError(
            f"instance {instance.name!r}: renderJob must not set {', '.join(sorted(reserved))} "
            "(the instance's plate, output, frame range and passes decide them)"
        )
    return RenderJob(
        input=instance.data[keys.PLATE],
        output=instance.data[keys.OUTPUT],
        frames=",".join(str(frame) for frame in frames),
        shot_range=f"{shot[0]}-{shot[-1]}",
        passes=tuple(instance.data.get(keys.PASSES) or PASSES),
        overwrite=overwrite,
        **extra,
    )


def register_host_renderer(method: str, render: HostRenderer) -> None:
    """Let instances whose `render` setting is `method` render through a host adapter's own renderer
    (the adapter calls this from its collector; publish never imports a host adapter)."""
    if method in METHODS:
        raise ValueError(f"render method {method!r} is built in")
    _HOST_RENDERERS[method] = render


def render_methods() -> tuple[str, ...]:
    """The `render` settings this process can honour: the built-in ones and the registered hosts'."""
    return (*METHODS, *_HOST_RENDERERS)


def render_frames(
    instance: Any,
    frames: list[int],
    *,
    overwrite: bool = False,
    changes: dict[str, Any] | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Render `frames` of `instance` with its `render` method; returns the job's result (a dict).

    Raises the BufferanyError subclass of the failure (the CLI's exit code, or the server's).
    """
    method = keys.setting(instance, keys.RENDER) or "cli"
    if method not in render_methods():
        raise BadArgumentsError(
            f"instance {instance.name!r}: render must be one of {', '.join(render_methods())}, not {method!r}"
        )
    if method in _HOST_RENDERERS:
        return _HOST_RENDERERS[method](instance, overwrite=overwrite, changes=changes or {})
    job = job_for(instance, frames, overwrite=overwrite, changes=changes)
    if method == "service":
        with Client.connect(
            keys.setting(instance, keys.DISCOVERY),
            start_server=bool(keys.setting(instance, keys.START_SERVER)),
        ) as client:
            job_id = client.submit(job)
            if log is not None:
                log.info(f"{instance.name}: job {job_id} submitted for frames {job.frames}")
            return client.wait(job_id)
    return _render_with_cli(instance, job, frames, log)


def _render_with_cli(instance: Any, job: RenderJob, frames: list[int], log: Any) -> dict[str, Any]:
    command = [*(keys.setting(instance, keys.RENDER_COMMAND) or DEFAULT_COMMAND), *render_arguments(job)]
    if log is not None:
        log.info(f"{instance.name}: running {' '.join(command)}")
    try:
        run = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as error:
        raise BadArgumentsError(
            f"instance {instance.name!r}: cannot run {command[0]!r} ({error.strerror}); set renderCommand"
        ) from error
    if run.returncode != 0:
        tail = "\n".join(run.stderr.strip().splitlines()[-_STDERR_LINES:])
        raise error_for_exit_code(
            run.returncode,
            f"{command[0]} failed (exit code {run.returncode}) rendering frames {job.frames} of {job.input}:\n{tail}",
        )
    return {
        "frames_written": list(frames),
        "output_pattern": job.output,
        "stdout": run.stdout,
    }
