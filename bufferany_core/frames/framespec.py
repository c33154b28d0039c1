"""Frame specs with their Nuke and Deadline meaning.

Accepted items, separated by commas and/or spaces:
  `1001`            one frame (negative frames are allowed: `-5`)
  `1001-1100`       an inclusive range; `100-1` is the same frames counted down
  `1001-1100x2`     every 2nd frame from 1001 (Nuke / Deadline step)
  `1:100`, `1:100:5`  Deadline's colon forms (the third number is a step)
The result is sorted and without duplicates: frames are rendered in time order whatever order the
spec lists them in. fileseq is not used for parsing because its `1-10:3` means "staggered", not a step.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import fileseq

from bufferany_core.errors import BadArgumentsError

_INT = r"(-?\d+)"
_SINGLE = re.compile(rf"^{_INT}$")
_DASH_RANGE = re.compile(rf"^{_INT}-{_INT}(?:x(\d+))?$")
_COLON_RANGE = re.compile(rf"^{_INT}:{_INT}(?::(\d+))?$")


MAX_FRAMES = 1_000_000  # a spec naming more is refused before any list is built


def count_frames(spec: str) -> int:
    """How many frames `spec` names (repeats counted), without building them; raises like
    `parse_frame_spec` for a spec it cannot read."""
    items = [item for item in re.split(r"[,\s]+", spec.strip()) if item]
    if not items:
        raise BadArgumentsError(f"frame spec {spec!r} is empty")
    return sum(len(_parse_item(item, spec)) for item in items)


def parse_frame_spec(spec: str, *, max_frames: int = MAX_FRAMES) -> list[int]:
    """Frames named by `spec`, sorted and unique. Raises BadArgumentsError naming the spec, also
    when it names more than `max_frames` frames (checked before they are listed)."""
    count = count_frames(spec)
    if count > max_frames:
        raise BadArgumentsError(f"frame spec {spec!r} names {count} frames; the limit is {max_frames}")
    frames: set[int] = set()
    for item in re.split(r"[,\s]+", spec.strip()):
        if item:
            frames.update(_parse_item(item, spec))
    return sorted(frames)


def _parse_item(item: str, spec: str) -> range:
    if match := _SINGLE.match(item):
        frame = int(match[1])
        return range(frame, frame + 1)
    match = _DASH_RANGE.match(item) or _COLON_RANGE.match(item)
    if match is None:
        raise BadArgumentsError(
            f"frame spec {spec!r}: cannot read {item!r} "
            "(expected forms: 1001, 1001-1100, 1001-1100x2, 1:100, 1:100:5, separated by commas)"
        )
    first, last = int(match[1]), int(match[2])
    step = int(match[3]) if match[3] is not None else 1
    if step < 1:
        raise BadArgumentsError(f"frame spec {spec!r}: the step in {item!r} must be 1 or more")
    if last >= first:
        return range(first, last + 1, step)
    return range(first, last - 1, -step)


def format_frame_spec(frames: Iterable[int]) -> str:
    """The shortest spec `parse_frame_spec` reads back as the same frames, e.g. "1001-1010,1012"."""
    unique = sorted(set(frames))
    if not unique:
        return ""
    return fileseq.framesToFrameRange(unique, sort=True, compress=True)
