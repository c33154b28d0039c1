"""Image sequences and movie files as numbered frames on disk.

A sequence path may be written as `shot.####.exr` (one `#` per digit, Nuke's meaning), `shot.@@@@.exr`,
`shot.%04d.exr` (`%d`: unpadded), `shot.$F4.exr` (`$F`: unpadded), or as one existing frame,
`shot.1001.exr`, whose siblings are found on disk (padding = the number of digits written). A file
without a frame number is a one-frame sequence numbered 1. Movie files (`.mp4`, `.mov`, ...) number
their frames from 1, like Nuke's Read node.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from bufferany_core import conventions
from bufferany_core.errors import (
    BadArgumentsError,
    FrameRangeError,
    InputNotFoundError,
    MissingFramesError,
)
from bufferany_core.frames.framespec import format_frame_spec, parse_frame_spec
from bufferany_core.frames.movie import MovieReader, is_movie_path

# A frame token in a file name; padding 0 means unpadded.
_TOKEN = re.compile(r"(?P<hash>#+)|(?P<at>@+)|%(?P<printf>0?\d*)d|\$F(?P<houdini>\d*)")
_LAST_NUMBER = re.compile(r"^(?P<head>.*?)(?P<digits>\d+)(?P<tail>\D*)$")


class FrameSequence:
    """Numbered files `<folder>/<head><frame><tail>` (or the frames of one movie file)."""

    def __init__(
        self,
        *,
        folder: Path,
        head: str,
        tail: str,
        padding: int,
        movie: Path | None = None,
        still: bool = False,
    ):
        self.folder = folder
        self.head = head
        self.tail = tail
        self.padding = padding
        self.movie = movie
        self.still = still  # one image without a frame number, frame 1
        self.frames: list[int] = []

    # --- construction --------------------------------------------------------------------------
    @classmethod
    def from_input(cls, text: str | Path) -> FrameSequence:
        """The sequence or movie named by `text`; raises InputNotFoundError if nothing is there."""
        path = Path(os.path.expanduser(str(text))).absolute()
        if is_movie_path(path):
            with MovieReader(path) as reader:
                sequence = cls(folder=path.parent, head=path.stem, tail=path.suffix, padding=0, movie=path)
                sequence.frames = list(range(1, reader.frame_count + 1))
            return sequence
        parsed = _split_token(path.name)
        if parsed is not None:
            sequence = cls(folder=path.parent, head=parsed[0], tail=parsed[2], padding=parsed[1])
            sequence.frames = sequence._scan()
            if not sequence.frames:
                raise InputNotFoundError(f"no files match the sequence {sequence.hash_pattern}")
            return sequence
        if path.is_dir():
            raise InputNotFoundError(
                f"input {path} is a folder: name a file or a pattern such as shot.####.exr"
            )
        if not path.is_file():
            raise InputNotFoundError(f"input {path} does not exist")
        stem, extension = os.path.splitext(path.name)
        number = _LAST_NUMBER.match(stem)
        if number is None:
            sequence = cls(folder=path.parent, head=path.name, tail="", padding=0, still=True)
            sequence.frames = [1]
            return sequence
        padding = len(number["digits"])
        tail = number["tail"] + extension
        sequence = cls(folder=path.parent, head=number["head"], tail=tail, padding=padding)
        sequence.frames = sequence._scan()
        return sequence

    @classmethod
    def for_output(cls, pattern: str | Path, *, padding: int = conventions.OUTPUT_PADDING) -> FrameSequence:
        """An output sequence; its frames need not exist (`.frames` lists those already written).

        A pattern without a frame token gets `.` and `padding` hashes before its extension:
        `out/shot.exr` becomes `out/shot.####.exr`.
        """
        path = Path(os.path.expanduser(str(pattern))).absolute()
        if is_movie_path(path):
            raise BadArgumentsError(f"output {path} is a movie file: outputs are EXR sequences")
        parsed = _split_token(path.name)
        if parsed is None:
            if padding < 1:
                raise BadArgumentsError(f"output padding must be 1 or more, not {padding}")
            parsed = (path.stem + ".", padding, path.suffix)
        sequence = cls(folder=path.parent, head=parsed[0], tail=parsed[2], padding=parsed[1])
        sequence.frames = sequence._scan()
        return sequence

    # --- naming --------------------------------------------------------------------------------
    @property
    def is_movie(self) -> bool:
        return self.movie is not None

    @property
    def pattern(self) -> str:
        """printf form, e.g. `/dir/shot.%04d.exr` (the movie's path for a movie)."""
        if self.movie is not None or self.still:
            return str(self.folder / (self.head + self.tail))
        token = f"%0{self.padding}d" if self.padding > 1 else "%d"
        return str(self.folder / f"{self.head}{token}{self.tail}")

    @property
    def hash_pattern(self) -> str:
        """Nuke form, e.g. `/dir/shot.####.exr` (the movie's path for a movie)."""
        if self.movie is not None or self.still:
            return str(self.folder / (self.head + self.tail))
        return str(self.folder / f"{self.head}{'#' * max(self.padding, 1)}{self.tail}")

    def path(self, frame: int) -> Path:
        """The file of `frame` (whether or not it exists)."""
        if self.movie is not None:
            raise BadArgumentsError(f"{self.movie} is a movie file: its frames have no paths")
        if self.still:
            if frame != 1:
                raise FrameRangeError(f"{self.pattern} is a single image (frame 1), not frame {frame}")
            return self.folder / self.head
        return self.folder / f"{self.head}{_format_frame(frame, self.padding)}{self.tail}"

    def __repr__(self) -> str:
        return f"FrameSequence({self.hash_pattern!r}, frames={format_frame_spec(self.frames)!r})"

    # --- frame selection -----------------------------------------------------------------------
    def select(self, spec: str | None) -> list[int]:
        """Frames to process: `spec` (Nuke/Deadline form) or, for None, the whole first..last range.

        FrameRangeError if the spec reaches outside the sequence; MissingFramesError (naming them)
        if frames inside it are absent on disk, also for None: a hole in a plate is a failed render.
        """
        if not self.frames:
            raise InputNotFoundError(f"no files match the sequence {self.hash_pattern}")
        first, last = self.frames[0], self.frames[-1]
        wanted = list(range(first, last + 1)) if spec is None else parse_frame_spec(spec)
        outside = [frame for frame in wanted if not first <= frame <= last]
        if outside:
            raise FrameRangeError(
                f"frame spec {spec!r} asks for frames {format_frame_spec(outside)} outside "
                f"{self.hash_pattern} (frames {first}-{last})"
            )
        present = set(self.frames)
        missing = [frame for frame in wanted if frame not in present]
        if missing:
            raise MissingFramesError(
                f"{len(missing)} frame(s) missing from {self.hash_pattern}: {format_frame_spec(missing)}",
                missing,
            )
        return wanted

    def _scan(self) -> list[int]:
        """Frames whose files exist, with exactly this padding (`%04d` does not match `shot.01.exr`)."""
        try:
            names = os.listdir(self.folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
        number = re.compile(rf"^{re.escape(self.head)}(-?\d+){re.escape(self.tail)}$")
        frames = []
        for name in names:
            match = number.match(name)
            if match and _format_frame(int(match[1]), self.padding) == match[1]:
                frames.append(int(match[1]))
        return sorted(frames)


def output_sequence_for(
    sequence: FrameSequence, *, suffix: str = conventions.OUTPUT_SUFFIX, ext: str = "exr"
) -> FrameSequence:
    """The default output beside an input: `shot.####.exr` -> `shot_buffers.####.exr`,
    `clip.mp4` -> `clip_buffers.####.exr`."""
    if sequence.movie is not None or sequence.still:
        stem = Path(sequence.head + sequence.tail).stem
        separator, rest = ".", ""
    else:
        stem = sequence.head.rstrip("._-")
        separator = sequence.head[len(stem) :] or "."
        rest = sequence.tail.rsplit(".", 1)[0] if "." in sequence.tail else sequence.tail
    name = f"{stem}{suffix}" if stem else suffix.lstrip("_.-")
    padding = sequence.padding if sequence.padding > 1 else conventions.OUTPUT_PADDING
    pattern = sequence.folder / f"{name}{separator}{'#' * padding}{rest}.{ext.lstrip('.')}"
    return FrameSequence.for_output(pattern)


def _split_token(name: str) -> tuple[str, int, str] | None:
    """(head, padding, tail) of a file name holding one frame token; None if it holds none."""
    tokens = list(_TOKEN.finditer(name))
    if not tokens:
        return None
    if len(tokens) > 1:
        raise BadArgumentsError(f"file name {name!r} holds more than one frame token")
    token = tokens[0]
    if token["hash"] is not None:
        padding = len(token["hash"])
    elif token["at"] is not None:
        padding = len(token["at"])
    else:
        width = token["printf"] if token["printf"] is not None else token["houdini"]
        padding = int(width) if width else 0
    return name[: token.start()], padding, name[token.end() :]


def _format_frame(frame: int, padding: int) -> str:
    return str(frame).zfill(padding)  # printf's %0Nd, also for negative frames ("-001")
