"""Render-farm job descriptions: Deadline (CommandLine plugin) and OpenCue, with their frame tokens.

A farm splits the shot into chunks and runs `bufferany-render --frames A-B --shot-range S-E` per
chunk; the shot range makes every chunk use the same windows and anchor frames, so the chunks agree
with one run of the whole shot. Standard library only.
"""

from __future__ import annotations

import re
import shlex
import sys
from functools import partial
from pathlib import Path

from bufferany_core.atomic import atomic_write
from bufferany_core.errors import BadArgumentsError, FrameRangeError, OutputNotWritableError
from bufferany_core.jobs import RenderJob, render_arguments

DEADLINE_START = "<STARTFRAME>"
DEADLINE_END = "<ENDFRAME>"
OPENCUE_START = "#FRAME_START#"
OPENCUE_END = "#FRAME_END#"
# Deadline `<STARTFRAME%4>` (padded), OpenCue `#IFRAME#`, `#ZFRAME#` (4-digit), `#FRAME_CHUNK#`, ...
FARM_TOKEN = re.compile(r"<(STARTFRAME|ENDFRAME)(?:%(\d+))?>|#(FRAME_START|FRAME_END|IFRAME|ZFRAME|FRAME_CHUNK|FRAMESPEC)#")


def check_expanded(value: str, *, field: str) -> None:
    """Refuse a frame argument whose farm tokens were never expanded (a job run outside the farm)."""
    match = FARM_TOKEN.search(value)
    if match:
        raise BadArgumentsError(
            f"{field} {value!r} still holds the farm token {match.group(0)}: the farm expands it; "
            "run by hand with real frame numbers"
        )


def clamp_to_shot(frames: list[int], shot: list[int], *, spec: str) -> tuple[list[int], list[int]]:
    """(frames inside the shot, frames dropped). OpenCue's last chunk `#FRAME_END#` overshoots the
    shot's end: those frames are dropped, not an error; a chunk with no frame in the shot is."""
    inside = set(shot)
    kept = [f for f in frames if f in inside]
    dropped = [f for f in frames if f not in inside]
    if not kept:
        raise FrameRangeError(f"--frames {spec!r} has no frame inside the shot range {shot[0]}-{shot[-1]}")
    return kept, dropped


def _command(executable: str | None) -> list[str]:
    if executable:
        return shlex.split(executable)
    script = Path(sys.executable).with_name("bufferany-render")
    return [str(script)] if script.exists() else [sys.executable, "-m", "bufferany_core.pipeline.cli"]


def _deadline_join(args: list[str]) -> str:
    # Deadline starts the program without a shell and splits Arguments like a Windows command line:
    # double quotes work on every platform, single quotes do not; its tokens must stay bare.
    quoted = [a for a in args if '"' in a]
    if quoted:
        raise BadArgumentsError(f"argument {quoted[0]!r} holds a double quote, which a Deadline command line cannot carry")
    return " ".join(f'"{a}"' if not a or re.search(r"\s", a) else a for a in args)


def opencue_command(job: RenderJob, *, shot_range: str, executable: str | None = None) -> str:
    """The command of an OpenCue layer: one chunk per frame range, `#FRAME_END#` clamped by the CLI."""
    chunk_job = RenderJob(**{**job.to_dict(), "frames": f"{OPENCUE_START}-{OPENCUE_END}", "shot_range": shot_range})
    return shlex.join(_command(executable) + render_arguments(chunk_job))


def write_deadline_job(
    job: RenderJob,
    directory: str | Path,
    *,
    shot_range: tuple[int, int],
    output_pattern: str,
    chunk_size: int = 10,
    name: str | None = None,
    executable: str | None = None,
) -> tuple[Path, Path]:
    """Write `job_info.job` and `plugin_info.job` for Deadline's CommandLine plugin; submit them with
    `deadlinecommand job_info.job plugin_info.job`."""
    if chunk_size < 1:
        raise BadArgumentsError(f"--chunk-size must be at least 1, got {chunk_size}")
    first, last = shot_range
    folder = Path(directory).expanduser()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot create the Deadline job folder {folder}: {exc}") from exc
    chunk_job = RenderJob(**{**job.to_dict(), "frames": f"{DEADLINE_START}-{DEADLINE_END}", "shot_range": f"{first}-{last}"})
    program, *program_args = _command(executable)
    out = Path(output_pattern)
    job_info = {
        "Plugin": "CommandLine",
        "Name": name or f"bufferany {Path(job.input).name}",
        "Frames": f"{first}-{last}",
        "ChunkSize": str(chunk_size),
        "OutputDirectory0": str(out.parent),
        "OutputFilename0": out.name,
    }
    plugin_info = {
        "Executable": program,
        "Arguments": _deadline_join(program_args + render_arguments(chunk_job)),
        "Shell": "default",
        "ShellExecute": "False",
        "StartupDirectory": "",
    }
    paths = folder / "job_info.job", folder / "plugin_info.job"
    for path, table in zip(paths, (job_info, plugin_info), strict=True):
        text = "".join(f"{k}={v}\n" for k, v in table.items())
        # Atomic: a full disk must not leave a truncated job file that deadlinecommand would submit.
        atomic_write(path, partial(Path.write_text, data=text, encoding="utf-8"))
    return paths
