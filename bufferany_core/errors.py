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
