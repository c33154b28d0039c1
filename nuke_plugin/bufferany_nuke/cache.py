"""Cache of plate frames and passes: same input frames + same settings -> the same folder, reused.

The key hashes the settings that decide the pixels with a signature of everything upstream: each
upstream node's class and non-default knobs, and the size and modification time of every file those
nodes read in the frame range. A finished render leaves a marker naming its key and frames.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nuke

from bufferany_core.atomic import atomic_write
from bufferany_core.conventions import OUTPUT_PADDING, OUTPUT_SUFFIX
from bufferany_core.framepaths import frame_path
from bufferany_nuke.settings import NodeSettings

MARKER = "bufferany_nuke.json"
_PADDING = "#" * OUTPUT_PADDING


@dataclass(frozen=True)
class CacheEntry:
    folder: Path
    key: str

    @property
    def plate_pattern(self) -> str:
        return str(self.folder / f"plate.{_PADDING}.exr")

    @property
    def passes_pattern(self) -> str:
        return str(self.folder / f"plate{OUTPUT_SUFFIX}.{_PADDING}.exr")

    @property
    def marker(self) -> Path:
        return self.folder / MARKER

    def passes_file(self, frame: int) -> Path:
        return Path(frame_path(self.passes_pattern, frame))

    def finished_result(self, first: int, last: int) -> dict[str, Any] | None:
        """The recorded job result when a finished render with this key exists and none of its pass
        files went missing, else None."""
        try:
            record = json.loads(self.marker.read_text())
        except (OSError, ValueError):
            return None
        if record.get("key") != self.key or record.get("frames") != [first, last]:
            return None
        if not all(self.passes_file(frame).is_file() for frame in range(first, last + 1)):
            return None
        result = record.get("result")
        return result if isinstance(result, dict) else None

    def record(self, first: int, last: int, result: dict[str, Any]) -> None:
        """Mark the render finished (atomically: a half-written marker never counts)."""
        text = json.dumps({"key": self.key, "frames": [first, last], "result": result}, indent=1)
        atomic_write(self.marker, lambda temporary: temporary.write_text(text))


def entry_for(group: nuke.Group, settings: NodeSettings) -> CacheEntry:
    """The cache folder for `group`'s current input and settings (main thread: reads the node graph)."""
    plate = group.input(0)
    if plate is None:
        raise ValueError(f"{group.fullName()}: no input")
    signature = {
        "settings": settings.result_fields(),
        "upstream": _upstream_knobs(plate),
        "files": _file_stats(plate, settings.first, settings.last),
    }
    key = hashlib.sha256(json.dumps(signature, sort_keys=True).encode()).hexdigest()
    return CacheEntry(folder=settings.cache_root / f"{group.name()}_{key[:16]}", key=key)


# Knobs that change how a node looks in the DAG, never its pixels: moving or selecting a node
# upstream must not throw the cache away.
_LOOKS_ONLY = frozenset(
    "name xpos ypos selected label note_font note_font_size note_font_color tile_color gl_color hide_input "
    "postage_stamp postage_stamp_frame dope_sheet bookmark icon indicators autolabel help onCreate onDestroy "
    "knobChanged updateUI cached panel".split()
)


def _upstream_knobs(start: nuke.Node) -> list[list[str]]:
    """Class and knob values of `start` and every node above it, in a fixed walk order."""
    seen: set[str] = set()
    order: list[list[str]] = []
    stack = [start]
    while stack:
        node = stack.pop()
        name = node.fullName()
        if name in seen:
            continue
        seen.add(name)
        knobs = node.knobs()
        values = [f"{knob} {knobs[knob].toScript()}" for knob in sorted(knobs) if knob not in _LOOKS_ONLY]
        order.append([node.Class(), *values])
        stack.extend(reversed(node.dependencies(nuke.INPUTS | nuke.HIDDEN_INPUTS)))
    return order


def _file_stats(start: nuke.Node, first: int, last: int) -> list[list[Any]]:
    stats: list[list[Any]] = []
    for dependency in start.fileDependencies(first, last):  # [[node, [file, ...]], ...]
        files = dependency[1] if isinstance(dependency[1], list) else []
        for path in files:
            try:
                info = os.stat(str(path))
            except OSError:
                stats.append([str(path), None, None])
            else:
                stats.append([str(path), info.st_size, info.st_mtime_ns])
    return sorted(stats, key=lambda item: item[0])
