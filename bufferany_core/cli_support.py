"""What every bufferany command line does with a failure: one line naming the fault on stderr and
the error's own exit code (`errors.ExitCode`), so farms and scripts can branch on it.

Standard library only: commands import torch late, and this module must not pull it in.
"""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from collections.abc import Callable

from bufferany_core.errors import (
    BadArgumentsError,
    BufferanyError,
    ExitCode,
    is_out_of_memory,
    out_of_memory_error,
)


def say(line: str, *, stream=None) -> None:
    """Print one line and flush it (farm log parsers read progress as it comes)."""
    print(line, file=stream or sys.stdout, flush=True)


def progress_lines(percent: int) -> list[str]:
    """The progress lines every command prints: Deadline's and Tractor's (Alfred's) formats."""
    return [f"Progress: {int(percent)}%", f"ALF_PROGRESS {int(percent)}%"]


def frame_written_line(frame: int, path: object) -> str:
    """The line every command prints when a frame's file is complete."""
    return f"Frame {frame} written: {path}"


def print_event_json(event: dict) -> None:
    """One event as one JSON object on one line (`--log-format json`), for farm log parsers."""
    say(json.dumps(event, default=str))


def print_event(event: dict) -> None:
    """Print one pipeline event (`run_render`'s `on_event`) as the farm-friendly lines every command
    shares: `Progress: NN%`, `ALF_PROGRESS NN%`, `Frame N written: PATH`, each flushed."""
    kind = event["type"]
    if kind == "started":
        say(f"Rendering {len(event['frames'])} frame(s) to {event['output']}")
        if event.get("untrained"):
            say(
                "WARNING: UNTRAINED WEIGHTS: these passes come from random weights and mean nothing; "
                "the output is marked bufferany/untrained=1",
                stream=sys.stderr,
            )
    elif kind == "progress":
        for line in progress_lines(event["percent"]):
            say(line)
    elif kind == "frame_done":
        say(frame_written_line(event["frame"], event["path"]))
    elif kind == "frame_skipped":
        say(f"Frame {event['frame']} already rendered, skipped: {event['path']}")
    elif kind == "log":
        if event.get("level") == "warning":
            say(f"WARNING: {event['message']}", stream=sys.stderr)
        else:
            say(event["message"])


def run_cli(
    prog: str,
    body: Callable[[], int],
    *,
    parser: argparse.ArgumentParser | None = None,
    interrupted: str = "interrupted; finished frames are complete",
) -> int:
    """`body()`'s exit code, or the exit code of what it raised, with its message on stderr.

    Bad arguments also print the parser's usage line; Ctrl-C exits CANCELLED with `interrupted`;
    running out of memory outside the pipeline's own checks exits OUT_OF_MEMORY; anything else is
    a bug: the traceback, exit 1.
    """
    try:
        return body()
    except BufferanyError as exc:
        if isinstance(exc, BadArgumentsError) and parser is not None:
            parser.print_usage(sys.stderr)
        say(f"{prog}: error: {exc}", stream=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        say(f"{prog}: {interrupted}", stream=sys.stderr)
        return ExitCode.CANCELLED
    except Exception as exc:
        if is_out_of_memory(exc):
            say(f"{prog}: error: {out_of_memory_error(exc)}", stream=sys.stderr)
            return ExitCode.OUT_OF_MEMORY
        traceback.print_exc()
        return ExitCode.INTERNAL
