"""Errors users can act on, each with its own process exit code.

Exit codes are part of the command-line contract (render farms branch on them) and are listed in
README.md. Standard library only.
"""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    OK = 0
    INTERNAL = 1
    BAD_ARGUMENTS = 2  # argparse also exits with 2
    INPUT_NOT_FOUND = 3  # no such file / empty sequence
    MISSING_FRAMES = 4
    FRAME_RANGE = 5  # frame spec outside the sequence
    UNREADABLE_IMAGE = 6  # corrupt, truncated or unsupported file
    MIXED_RESOLUTION = 7
    NON_FINITE = 8  # NaN or Inf pixels
    OUTPUT_NOT_WRITABLE = 9
    MISSING_WEIGHTS = 10
    OUT_OF_MEMORY = 11
    PARTIAL_FAILURE = 12
    CANCELLED = 13
    SERVICE = 14  # server unreachable, bad token, protocol error
    DISK_FULL = 15  # no space left on the output's device (ENOSPC) or quota exceeded (EDQUOT)
    OUTPUT_CONFLICT = 16  # output frames exist from other settings (re-run with --overwrite to replace them)


class BufferanyError(Exception):
    """Base class: a message for the user and the exit code the CLI returns."""

    exit_code: ExitCode = ExitCode.INTERNAL


class BadArgumentsError(BufferanyError, ValueError):
    exit_code = ExitCode.BAD_ARGUMENTS


class InputNotFoundError(BufferanyError, FileNotFoundError):
    exit_code = ExitCode.INPUT_NOT_FOUND


class MissingFramesError(BufferanyError):
    exit_code = ExitCode.MISSING_FRAMES

    def __init__(self, message: str, frames: list[int] | None = None):
        super().__init__(message)
        self.frames = list(frames or [])


class FrameRangeError(BufferanyError, ValueError):
    exit_code = ExitCode.FRAME_RANGE


class UnreadableImageError(BufferanyError):
    exit_code = ExitCode.UNREADABLE_IMAGE


class MixedResolutionError(BufferanyError):
    exit_code = ExitCode.MIXED_RESOLUTION


class NonFiniteError(BufferanyError):
    exit_code = ExitCode.NON_FINITE


class OutputNotWritableError(BufferanyError, PermissionError):
    exit_code = ExitCode.OUTPUT_NOT_WRITABLE


class DiskFullError(OutputNotWritableError):
    exit_code = ExitCode.DISK_FULL


class OutputConflictError(BufferanyError):
    exit_code = ExitCode.OUTPUT_CONFLICT


class MissingWeightsError(BufferanyError, FileNotFoundError):
    exit_code = ExitCode.MISSING_WEIGHTS


class OutOfMemoryError(BufferanyError, MemoryError):
    exit_code = ExitCode.OUT_OF_MEMORY


class PartialFailureError(BufferanyError):
    exit_code = ExitCode.PARTIAL_FAILURE


class CancelledError(BufferanyError):
    exit_code = ExitCode.CANCELLED


class ServiceError(BufferanyError):
    exit_code = ExitCode.SERVICE


# --- one rule per failure ------------------------------------------------------------------------

OUT_OF_MEMORY_HINT = (
    "try a smaller --window, --depth-processing-size or --normal-processing-size, or --device cpu"
)


def is_out_of_memory(exc: BaseException) -> bool:
    """torch.OutOfMemoryError (CUDA), Python's MemoryError and the CPU allocator's RuntimeError,
    recognised without importing torch."""
    if isinstance(exc, OutOfMemoryError):
        return True
    text = str(exc)
    return (
        isinstance(exc, MemoryError)
        or type(exc).__name__ == "OutOfMemoryError"
        or "out of memory" in text
        or "can't allocate memory" in text
    )


def out_of_memory_error(exc: BaseException, *, doing: str = "", device: object = None) -> OutOfMemoryError:
    """The one message for running out of memory: where, while doing what, the allocator's first line,
    and what to change. Use as `raise out_of_memory_error(exc, doing=..., device=...) from exc`.

    `doing` says what was running ("predicting depth for frames 1-32 (32 frames of 1920x1080)");
    `device` is the device (a torch.device or its name), left out of the message when unknown.
    """
    if isinstance(exc, OutOfMemoryError):
        return exc
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = f" on device {str(device)!r}" if device is not None else ""
    what = f" {doing}" if doing else ""
    return OutOfMemoryError(f"out of memory{where}{what}: {detail}; {OUT_OF_MEMORY_HINT}")


def exit_code_for(value: int) -> ExitCode:
    """`value` as an ExitCode; codes this version does not know (a newer server's) are INTERNAL."""
    try:
        return ExitCode(value)
    except ValueError:
        return ExitCode.INTERNAL


def error_class_for(code: int) -> type[BufferanyError]:
    """The BufferanyError subclass whose exit code is `code` (the base class for INTERNAL and unknown codes)."""
    wanted = exit_code_for(code)
    for kind in list(globals().values()):
        if isinstance(kind, type) and issubclass(kind, BufferanyError) and kind.exit_code == wanted:
            return kind
    return BufferanyError


def error_for_exit_code(code: int, message: str) -> BufferanyError:
    """The exception a process (a CLI, a server's job) that ended with exit code `code` stands for:
    `error_class_for(code)` with `message`."""
    return error_class_for(code)(message)
