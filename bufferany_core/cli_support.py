"""What every bufferany command line does with a failure: one line naming the fault on stderr and
the error's own exit code (`errors.ExitCode`), so farms and scripts can branch on it.

Standard library only: commands import torch late, and this module must not pull it in.
"""

from __future__ import annotations

import argparse
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
