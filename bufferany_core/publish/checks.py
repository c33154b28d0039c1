"""What the bufferany validators check, one function per check (numpy and OpenImageIO: farm side).

Per-file checks return problems as short sentences; `problems_per_frame` runs one over every
existing frame of an instance and keeps the file and frame each is about; `fail_if` turns them into
one failure message, a line per distinct problem.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import OpenImageIO as oiio

from bufferany_core import conventions
from bufferany_core.conventions import HEADER
from bufferany_core.errors import BufferanyError, UnreadableImageError
from bufferany_core.frames import (
    FrameSequence,
    ImageInfo,
    MovieReader,
    format_frame_spec,
    read_channels,
    read_info,
)
from bufferany_core.publish import instances as keys

# Channel types the conventions allow, per pass.
DEPTH_TYPES = (conventions.DEPTH_PRECISION,)
NORMAL_TYPES = tuple(precision.value for precision in conventions.NormalPrecision)
DEFAULT_NORMAL_TOLERANCE = 0.01  # half floats hold unit vectors to about 1e-3
DEFAULT_FLICKER_THRESHOLD = {"depth": 0.05, "normal": 0.05}
_PIXEL_PERCENTILE = 75
_MAX_LINES = 25  # problems listed in one failure message; the rest are counted


class PublishValidationError(BufferanyError):
    """A validator's failure: what is wrong, and in which file and frame."""


@dataclass
class PassFile:
    frame: int
    path: Path

    @cached_property
    def info(self) -> ImageInfo:
        return read_info(self.path)


def pass_files(instance: Any) -> list[PassFile]:
    """The instance's passes files that exist, in frame order (missing ones are another check's job)."""
    pattern = instance.data[keys.OUTPUT]
    found = (PassFile(frame, keys.frame_path(pattern, frame)) for frame in keys.frame_range(instance))
    return [item for item in found if item.path.is_file()]


def expected_channels(passes: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """Channel name -> allowed types for the requested passes."""
    expected: dict[str, tuple[str, ...]] = {}
    if "depth" in passes:
        expected[conventions.DEPTH_CHANNEL] = DEPTH_TYPES
    if "normal" in passes:
        expected.update(dict.fromkeys(conventions.NORMAL_CHANNELS, NORMAL_TYPES))
    return expected


@dataclass(frozen=True)
class Problem:
    detail: str  # what is wrong
    frame: int | None = None  # where: the frame and its file (None: the whole sequence)
    file: str | None = None


def problems_per_frame(instance: Any, check: Callable[[PassFile], list[str]]) -> list[Problem]:
    """`check` run on every existing passes file of `instance`; an unreadable file is a problem too."""
    problems = []
    for item in pass_files(instance):
        try:
            found = check(item)
        except BufferanyError as error:
            found = [str(error)]
        problems += [Problem(detail, item.frame, item.path.name) for detail in found]
    return problems


def _lines(problems: Sequence[Problem]) -> list[str]:
    """One line per distinct detail: `shot.1003.exr (frame 1003): ...`, or for a detail shared by
    several frames `shot.1001.exr ... shot.1040.exr (frames 1001-1040): ...`."""
    grouped: dict[str, list[Problem]] = {}
    for problem in problems:
        grouped.setdefault(problem.detail, []).append(problem)
    lines = []
    for detail, group in grouped.items():
        frames = [problem.frame for problem in group if problem.frame is not None]
        if not frames:
            lines.append(detail)
        elif len(group) == 1:
            lines.append(f"{group[0].file} (frame {frames[0]}): {detail}")
        else:
            lines.append(
                f"{group[0].file} ... {group[-1].file} (frames {format_frame_spec(frames)}): {detail}"
            )
    return lines


def missing_frames_problem(instance: Any) -> str | None:
    """Which frames of the range have no passes file, compactly (`1003-1004,1007`); None if none."""
    missing = keys.missing_frames(instance)
    if not missing:
        return None
    total = len(keys.frame_range(instance))
    return (
        f"{instance.name}: {len(missing)} of {total} frame(s) of {instance.data[keys.OUTPUT]} "
        f"missing: {format_frame_spec(missing)}"
    )


def fail_if(problems: Sequence[Problem], *, what: str, instance: Any, plugin: type) -> None:
    """Raise PublishValidationError listing `problems` (if any), and record the frames they are
    about on the instance for the repair actions."""
    frames = sorted({problem.frame for problem in problems if problem.frame is not None})
    instance.data.setdefault(keys.FAILED_FRAMES, {})[plugin.__name__] = frames
    if not problems:
        return
    lines = _lines(problems)
    if len(lines) > _MAX_LINES:
        lines[_MAX_LINES:] = [f"... and {len(lines) - _MAX_LINES} more"]
    folder = Path(instance.data[keys.OUTPUT]).parent
    raise PublishValidationError(
        f"{instance.name}: {what} ({len(problems)} problem(s) in {folder}):\n  " + "\n  ".join(lines)
    )


# --- header checks -------------------------------------------------------------------------------
def compression_of(path: Path) -> str:
    image = oiio.ImageInput.open(str(path))
    if image is None:
        raise UnreadableImageError(f"cannot read image {path}: {oiio.geterror()}")
    try:
        return image.spec().get_string_attribute("compression", "")
    finally:
        image.close()


def channel_problems(info: ImageInfo, passes: Sequence[str]) -> list[str]:
    types = dict(zip(info.channels, info.channel_formats, strict=True))
    problems = []
    for name, allowed in expected_channels(passes).items():
        if name not in types:
            problems.append(f"channel {name} missing (has: {', '.join(info.channels)})")
        elif types[name] not in allowed:
            problems.append(f"channel {name} is {types[name]}, expected {' or '.join(allowed)}")
    return problems


def compression_problems(compression: str) -> list[str]:
    if compression.lower() in conventions.LOSSLESS_COMPRESSIONS:
        return []
    return [
        f"compression {compression or 'unknown'} is not lossless "
        f"(allowed: {', '.join(conventions.LOSSLESS_COMPRESSIONS)})"
    ]


def geometry_problems(info: ImageInfo, plate: ImageInfo, plate_path: str) -> list[str]:
    problems = []
    if info.data_window != plate.data_window:
        problems.append(
            f"data window {_window(info.data_window)} differs from the plate's {_window(plate.data_window)} ({plate_path})"
        )
    if info.display_window != plate.display_window:
        problems.append(
            f"display window {_window(info.display_window)} differs from the plate's {_window(plate.display_window)} ({plate_path})"
        )
    if abs(info.pixel_aspect - plate.pixel_aspect) > 1e-6:
        problems.append(
            f"pixel aspect {info.pixel_aspect:g} differs from the plate's {plate.pixel_aspect:g} ({plate_path})"
        )
    return problems


def _window(window: tuple[int, int, int, int]) -> str:
    x, y, width, height = window
    return f"{width}x{height} at ({x}, {y})"


def provenance_problems(info: ImageInfo, passes: Sequence[str], *, allow_untrained: bool) -> list[str]:
    required = [HEADER.version, HEADER.passes, HEADER.source, HEADER.untrained, HEADER.weights_sha256]
    if "depth" in passes:
        required += [HEADER.depth_model, HEADER.depth_convention]
    if "normal" in passes:
        required += [HEADER.normal_model, HEADER.normal_space, HEADER.normal_axes]
    missing = [name for name in required if name not in info.metadata]
    problems = [f"provenance header {', '.join(missing)} missing"] if missing else []
    recorded = str(info.metadata.get(HEADER.passes, "")).split(",")
    absent = [name for name in passes if HEADER.passes in info.metadata and name not in recorded]
    if absent:
        problems.append(f"header {HEADER.passes} = {','.join(recorded)!r} lacks {', '.join(absent)}")
    if not allow_untrained and str(info.metadata.get(HEADER.untrained, "0")) not in ("0", "False", "false"):
        problems.append(
            f"rendered with UNTRAINED (random) weights ({HEADER.untrained} = {info.metadata[HEADER.untrained]}); "
            f"set {keys.ALLOW_UNTRAINED} on the instance to publish test output"
        )
    return problems


# --- pixel checks --------------------------------------------------------------------------------
def _present(path: Path, names: Sequence[str]) -> list[str]:
    """Those of `names` that `path` has (a missing channel is the channels validator's problem)."""
    channels = set(read_info(path).channels)
    return [name for name in names if name in channels]


def non_finite_problems(path: Path, names: Sequence[str]) -> list[str]:
    names = _present(path, names)
    if not names:
        return []
    pixels = read_channels(path, names)  # (H, W, C)
    problems = []
    for index, name in enumerate(names):
        bad = ~np.isfinite(pixels[:, :, index])
        if bad.any():
            y, x = np.argwhere(bad)[0]
            nan = int(np.isnan(pixels[:, :, index]).sum())
            problems.append(
                f"channel {name} has {int(bad.sum())} non-finite pixel(s) ({nan} NaN, {int(bad.sum()) - nan} Inf), "
                f"first at x={x}, y={y} of the data window"
            )
    return problems


def normal_problems(path: Path, tolerance: float) -> list[str]:
    if len(_present(path, conventions.NORMAL_CHANNELS)) < len(conventions.NORMAL_CHANNELS):
        return []
    normals = read_channels(path, conventions.NORMAL_CHANNELS)  # (H, W, 3)
    error = np.abs(np.linalg.norm(normals, axis=-1) - 1.0)  # (H, W)
    bad = np.isfinite(error) & (error > tolerance)  # NaN and Inf are the finite check's problem
    if not bad.any():
        return []
    y, x = np.unravel_index(np.nanargmax(np.where(bad, error, -1.0)), error.shape)
    return [
        f"{int(bad.sum())} pixel(s) of {'/'.join(conventions.NORMAL_CHANNELS)} are not unit length "
        f"(| |N| - 1 | > {tolerance:g}; worst {error[y, x]:.3g} at x={x}, y={y})"
    ]


# --- plate ---------------------------------------------------------------------------------------
class PlateHeaders:
    """Header of the plate's frame for each passes frame (a movie's one header for all frames)."""

    def __init__(self, plate: str):
        self.sequence = FrameSequence.from_input(plate)
        self._movie_info: ImageInfo | None = None

    def path(self, frame: int) -> str:
        if self.sequence.movie is not None:
            return str(self.sequence.movie)
        own = self.sequence.path(frame)
        return str(own if own.is_file() else self.sequence.path(self.sequence.frames[0]))

    def info(self, frame: int) -> ImageInfo:
        if self.sequence.movie is None:
            return read_info(self.path(frame))
        if self._movie_info is None:
            with MovieReader(self.sequence.movie) as reader:
                self._movie_info = reader.info
        return self._movie_info


# --- temporal flicker ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Flicker:
    """Temporal flicker of one pass. Per frame t: the 75th percentile over pixels of the second
    difference |x[t+1] - 2 x[t] + x[t-1]| (vector length for normals), in units of the shot's spread
    (depth: median over frames of mean |d - median(d)|; normals: 1, they are unit vectors). The score
    is the median of that over frames. Steady motion has a second difference near zero, frame-to-frame
    jitter (in values, or in a frame's scale) does not; the percentile ignores edges sweeping over a
    quarter of the frame or less, the median over frames the two frames around a cut.
    """

    score: float
    worst: tuple[tuple[int, float], ...]  # (frame, per-frame value), highest first


def flicker(files: Sequence[PassFile], names: Sequence[str], *, scale_free: bool) -> Flicker | None:
    """Flicker of the channels `names` over `files`; None with fewer than 3 consecutive frames."""
    per_frame: list[tuple[int, float]] = []
    spreads: list[float] = []
    previous: list[tuple[int, np.ndarray]] = []
    for item in files:
        if len(_present(item.path, names)) < len(names):
            previous = []  # the channels validator reports the file; no second difference across it
            continue
        pixels = read_channels(item.path, names)  # (H, W, C)
        if scale_free:
            finite = pixels[np.isfinite(pixels)]
            if finite.size:
                spreads.append(float(np.mean(np.abs(finite - np.median(finite)))))
        if previous and (previous[-1][0] != item.frame - 1 or previous[-1][1].shape != pixels.shape):
            previous = []  # a gap or a size change: no second difference across it
        previous = [*previous[-2:], (item.frame, pixels)]
        if len(previous) == 3:
            (_, before), (middle, current), (_, after) = previous
            second = after - 2.0 * current + before  # (H, W, C)
            size = np.linalg.norm(second, axis=-1)  # (H, W)
            finite = size[np.isfinite(size)]
            per_frame.append(
                (middle, float(np.percentile(finite, _PIXEL_PERCENTILE)) if finite.size else 0.0)
            )
    if not per_frame:
        return None
    spread = float(np.median(spreads)) if scale_free and spreads else 1.0
    values = np.array([value for _, value in per_frame]) / max(spread, 1e-12)
    ranked = sorted(
        zip((frame for frame, _ in per_frame), values.tolist(), strict=True), key=lambda fv: -fv[1]
    )
    return Flicker(score=float(np.median(values)), worst=tuple(ranked[:5]))


def flicker_thresholds(value: float | Mapping[str, float] | None) -> dict[str, float]:
    """Per-pass thresholds from an instance's `flickerThreshold` (a number applies to every pass)."""
    if value is None:
        return dict(DEFAULT_FLICKER_THRESHOLD)
    if isinstance(value, Mapping):
        return {**DEFAULT_FLICKER_THRESHOLD, **{name: float(v) for name, v in value.items()}}
    return dict.fromkeys(DEFAULT_FLICKER_THRESHOLD, float(value))
