"""Render an instance's missing frames through the bufferany service or the `bufferany-render` CLI.

Standard library only: runs inside Nuke, Blender or any pyblish host. The whole instance range is
passed as the shot range, so frames rendered later share the scale and shift of those already there.
"""

from __future__ import annotations

import subprocess
from typing import Any

from bufferany_core.client import Client
from bufferany_core.errors import BadArgumentsError, error_for_exit_code
from bufferany_core.jobs import PASSES, RenderJob
from bufferany_core.pipeline.farm import render_arguments
from bufferany_core.publish import instances as keys

METHODS = ("cli", "service", "nuke")
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
    if method not in METHODS:
        raise BadArgumentsError(
            f"instance {instance.name!r}: render must be one of {', '.join(METHODS)}, not {method!r}"
        )
    if method == "nuke":
        return _render_in_nuke(instance, overwrite=overwrite, changes=changes or {})
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


def _render_in_nuke(instance: Any, *, overwrite: bool, changes: dict[str, Any]) -> dict[str, Any]:
    """The BufferAnytime node renders its own plate cache and passes (its Generate, synchronously):
    the whole range, `overwrite` through its `force` knob, `changes` on its knobs of the same name."""
    import bufferany_nuke  # noqa: PLC0415
    import nuke  # noqa: PLC0415  (only inside Nuke)

    group = nuke.toNode(instance.data["nukeNode"])
    if group is None:
        raise BadArgumentsError(
            f"instance {instance.name!r}: node {instance.data['nukeNode']} no longer exists"
        )
    unknown = [name for name in changes if group.knob(name) is None]
    if unknown:
        raise BadArgumentsError(f"{group.fullName()}: no knob {', '.join(unknown)} to change for the render")
    for name, value in changes.items():
        group[name].setValue(value)
    force = group["force"].value()
    group["force"].setValue(force or overwrite)
    try:
        return bufferany_nuke.generate(group, synchronous=True) or {}
    finally:
        group["force"].setValue(force)
