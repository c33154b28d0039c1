"""One reader for image sequences and movie files: model-ready frames with their frame numbers."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bufferany_core.errors import (
    FrameRangeError,
    MissingFramesError,
    MixedResolutionError,
    NonFiniteError,
)
from bufferany_core.frames.colour import (
    DISPLAY_COLORSPACE,
    colour_transform,
    default_colorspace,
    resolve_colorspace,
)
from bufferany_core.frames.exr import ImageInfo, colour_channels, read_info, read_rgb
from bufferany_core.frames.framespec import format_frame_spec
from bufferany_core.frames.movie import MovieReader
from bufferany_core.frames.sequence import FrameSequence

_FINITE_CHUNK = 2**16  # halves per step of the NaN check


@dataclass
class Frame:
    number: int
    rgb: np.ndarray  # (H, W, 3) float32 sRGB in [0, 1], over the plate's data window
    info: ImageInfo  # the plate's geometry and metadata, for writing outputs `like` it
    path: Path | None  # None for movie frames


def read_frames(
    sequence: FrameSequence,
    frames: Sequence[int],
    *,
    colorspace: str | None = None,
    exposure: float = 0.0,
    check_finite: bool = True,
) -> Iterator[Frame]:
    """Frames `frames` of `sequence`, one at a time, in the order given (bounded memory).

    `colorspace` None picks the default per file (see `colour`). Raises MixedResolutionError at the
    first frame whose size differs from the first one, NonFiniteError for NaN/Inf pixels. The colour
    transform is built once (see `colour.colour_transform`); half plates are read as stored.
    """
    if colorspace is not None:
        resolve_colorspace(colorspace)  # fail before reading anything
    if sequence.movie is not None:
        yield from _read_movie(sequence.movie, frames, colorspace=colorspace, exposure=exposure)
        return
    first: tuple[int, ImageInfo] | None = None
    for number in frames:
        path = sequence.path(number)
        if not path.is_file():
            raise MissingFramesError(f"frame {number} is missing: {path}", [number])
        rgb, info = read_rgb(path, keep_half=True)
        if first is None:
            first = (number, info)
        _check_same_size(first, number, info, path)
        if check_finite:
            _check_finite(rgb, path)
        transform = colour_transform(colorspace or default_colorspace(info), exposure)
        yield Frame(number, transform.convert(rgb), info, path)


def _read_movie(
    movie: Path, frames: Sequence[int], *, colorspace: str | None, exposure: float
) -> Iterator[Frame]:
    transform = colour_transform(colorspace or DISPLAY_COLORSPACE, exposure)  # movies are display-referred
    with MovieReader(movie) as reader:
        info = reader.info
        for number in frames:
            yield Frame(number, transform.convert(reader.read_codes(number)), info, None)


def validate_sequence(sequence: FrameSequence, frames: Sequence[int]) -> ImageInfo:
    """Header-only pass over `frames` before any heavy work: every file exists, has a readable
    header with colour channels, and the same size. Returns the first frame's ImageInfo."""
    if not frames:
        raise FrameRangeError(f"no frames selected from {sequence.hash_pattern}")
    if sequence.movie is not None:
        with MovieReader(sequence.movie) as reader:
            outside = [number for number in frames if not 1 <= number <= reader.frame_count]
            if outside:
                raise FrameRangeError(
                    f"frames {format_frame_spec(outside)} are outside movie {sequence.movie} "
                    f"(frames 1-{reader.frame_count})"
                )
            return reader.info
    missing = [number for number in frames if not sequence.path(number).is_file()]
    if missing:
        raise MissingFramesError(
            f"{len(missing)} frame(s) missing from {sequence.hash_pattern}: {format_frame_spec(missing)}",
            missing,
        )
    first: tuple[int, ImageInfo] | None = None
    for number in frames:
        path = sequence.path(number)
        info = read_info(path)
        colour_channels(info, path)
        if first is None:
            first = (number, info)
        _check_same_size(first, number, info, path)
    assert first is not None
    return first[1]


def _check_same_size(first: tuple[int, ImageInfo], number: int, info: ImageInfo, path: Path) -> None:
    first_number, first_info = first
    if (info.width, info.height) != (first_info.width, first_info.height):
        raise MixedResolutionError(
            f"frame {number} ({path}) is {info.width}x{info.height} but frame {first_number} is "
            f"{first_info.width}x{first_info.height}: a sequence must keep one resolution"
        )


def _check_finite(rgb: np.ndarray, path: Path) -> None:
    if _halves_finite(rgb) if rgb.dtype == np.float16 else np.isfinite(rgb).all():
        return  # the usual case, far cheaper than counting
    count = int((~np.isfinite(rgb).all(axis=2)).sum())  # pixels, not values
    raise NonFiniteError(f"{path} has {count} pixel(s) with NaN or Inf values in R, G, B")


def _halves_finite(rgb: np.ndarray) -> bool:
    """Whether no half is Inf or NaN (every exponent bit set): a few times cheaper than isfinite on
    halves, chunk by chunk so that the masked bits stay in the CPU's cache."""
    bits = np.ascontiguousarray(rgb).reshape(-1).view(np.uint16)
    masked = np.empty(min(bits.size, _FINITE_CHUNK), np.uint16)
    for start in range(0, bits.size, _FINITE_CHUNK):
        part = masked[: min(_FINITE_CHUNK, bits.size - start)]
        np.bitwise_and(bits[start : start + part.size], 0x7FFF, out=part)
        if part.max() >= 0x7C00:
            return False
    return True
