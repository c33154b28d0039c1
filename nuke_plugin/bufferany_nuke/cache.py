"""Cache of plate frames and passes, content-addressed under one root (settings.cache_root):

    <root>/plates/<plate key>/plate.####.exr              the plate as the models see it (sRGB, half)
    <root>/plates/<plate key>/bufferany_plate.json
    <root>/passes/<passes key>/plate_buffers.####.exr     depth.Z, N.X/Y/Z
    <root>/passes/<passes key>/bufferany_nuke.json        key, frames, the job's result

The plate key hashes a signature of everything upstream (each upstream node's class and knobs, the
insides of upstream Groups, and the size and modification time of every file they read in the frame
range), the colour conversion and the frame range: one plate per upstream state, whatever the job
settings. The passes key adds the job settings. Any node, script or artist with the same upstream
and settings reuses the same folders; earlier versions stay beside the new ones until `clean`
removes the folders unused for a while. A finished render leaves a marker naming its key and frames.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nuke

from bufferany_core.atomic import atomic_write
from bufferany_core.conventions import OUTPUT_PADDING, OUTPUT_SUFFIX
from bufferany_core.framepaths import frame_path
from bufferany_nuke.settings import NodeSettings

MARKER = "bufferany_nuke.json"
PLATE_MARKER = "bufferany_plate.json"
_PADDING = "#" * OUTPUT_PADDING


@dataclass(frozen=True)
class CacheEntry:
    folder: Path  # the passes' folder
    key: str
    plate_folder: Path
    plate_key: str

    @property
    def plate_pattern(self) -> str:
        return (self.plate_folder / f"plate.{_PADDING}.exr").as_posix()

    @property
    def passes_pattern(self) -> str:
        return (self.folder / f"plate{OUTPUT_SUFFIX}.{_PADDING}.exr").as_posix()

    @property
    def marker(self) -> Path:
        return self.folder / MARKER

    def passes_file(self, frame: int) -> Path:
        return Path(frame_path(self.passes_pattern, frame))

    def finished_result(self, first: int, last: int) -> dict[str, Any] | None:
        """The recorded job result when a finished render with this key exists and none of its pass
        files went missing, else None."""
        record = _read_marker(self.marker)
        if record.get("key") != self.key or record.get("frames") != [first, last]:
            return None
        if not all(self.passes_file(frame).is_file() for frame in range(first, last + 1)):
            return None
        result = record.get("result")
        if isinstance(result, dict):
            _touch(self.marker)
            return result
        return None

    def record(self, first: int, last: int, result: dict[str, Any]) -> None:
        """Mark the render finished (atomically: a half-written marker never counts)."""
        text = json.dumps({"key": self.key, "plate": self.plate_key, "frames": [first, last], "result": result}, indent=1)
        atomic_write(self.marker, lambda temporary: temporary.write_text(text))

    def plate_ready(self, first: int, last: int) -> bool:
        """Whether the plate frames of this upstream state are all cached already."""
        record = _read_marker(self.plate_folder / PLATE_MARKER)
        if record.get("key") != self.plate_key or record.get("frames") != [first, last]:
            return False
        ready = all(Path(frame_path(self.plate_pattern, f)).is_file() for f in range(first, last + 1))
        if ready:
            _touch(self.plate_folder / PLATE_MARKER)
        return ready

    def record_plate(self, first: int, last: int) -> None:
        text = json.dumps({"key": self.plate_key, "frames": [first, last]}, indent=1)
        atomic_write(self.plate_folder / PLATE_MARKER, lambda temporary: temporary.write_text(text))


def _read_marker(path: Path) -> dict[str, Any]:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only cache (another artist's) still serves


def entry_for(group: nuke.Group, settings: NodeSettings) -> CacheEntry:
    """The cache folders for `group`'s current input and settings (main thread: reads the node graph)."""
    plate = group.input(0)
    if plate is None:
        raise ValueError(f"{group.fullName()}: no input")
    upstream, linked = _upstream_knobs(plate, settings.first, settings.last, exclude=group)
    plate_signature = {
        "upstream": upstream,
        "files": _file_stats([plate, *linked], settings.first, settings.last),
        "colour": settings.colour.key() if settings.colour is not None else None,
        "frames": [settings.first, settings.last],
    }
    plate_key = _hash(plate_signature)
    key = _hash({"plate": plate_key, "settings": settings.result_fields()})
    return CacheEntry(
        folder=settings.cache_root / "passes" / key[:20],
        key=key,
        plate_folder=settings.cache_root / "plates" / plate_key[:20],
        plate_key=plate_key,
    )


def _hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def clean(root: str | os.PathLike[str], *, older_than_days: float) -> list[Path]:
    """Remove the cached plates and passes under `root` unused (neither made nor reused) for
    `older_than_days`; returns the folders removed. Folders without a marker (a render in progress
    or cancelled) count from their own modification time."""
    removed: list[Path] = []
    limit = time.time() - older_than_days * 86400
    for kind, marker in (("plates", PLATE_MARKER), ("passes", MARKER)):
        parent = Path(root) / kind
        if not parent.is_dir():
            continue
        for folder in parent.iterdir():
            if not folder.is_dir():
                continue
            stamp = folder / marker
            try:
                used = (stamp if stamp.exists() else folder).stat().st_mtime
            except OSError:
                continue
            if used < limit:
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder)
    return removed


# Knobs that change how a node looks in the DAG, or what it runs in the GUI, never its pixels:
# moving, selecting, colouring or labelling a node upstream must not throw the cache away.
_LOOKS_ONLY = frozenset(
    "name xpos ypos selected label note_font note_font_size note_font_color tile_color gl_color hide_input "
    "postage_stamp postage_stamp_frame dope_sheet bookmark icon indicators autolabel help onCreate onDestroy "
    "knobChanged updateUI cached panel lock_connections "
    "beforeRender beforeFrameRender afterFrameRender afterRender renderProgress "
    # a BufferAnytime node's own bookkeeping (its status line, identity, what it shows)
    "bufferany_uuid bufferany_linked bufferany_stale".split()
)
# Knob classes that hold no pixel setting: tabs, labels, buttons.
_NO_PIXELS = frozenset(
    "Tab_Knob Text_Knob PyScript_Knob Script_Knob PyCustom_Knob Help_Knob Obsolete_Knob ColorChip_Knob "
    "BeginTabGroup_Knob EndTabGroup_Knob".split()
)
# Nodes a knob expression links in, beside the inputs: Nuke's own dependency walk.
_LINKS = nuke.INPUTS | nuke.HIDDEN_INPUTS | nuke.EXPRESSIONS


def _upstream_knobs(
    start: nuke.Node, first: int, last: int, *, exclude: nuke.Node | None = None
) -> tuple[list[list[str]], list[nuke.Node]]:
    """Class and pixel-relevant knob values of `start` and every node above it, in a fixed walk order;
    and the nodes only an expression links in (whose files count too).

    The walk follows inputs, the insides of Groups and gizmos, and expression links
    (`dependencies(nuke.EXPRESSIONS)`: a Transform whose translate follows a Tracker elsewhere).
    A knob driven by an expression or animation is recorded as written and as evaluated on every
    frame of the range, so a change wherever its value comes from (another node, the root, $env)
    shows. File knobs count as evaluated (TCL, $env), with forward slashes. `exclude` (the node the
    key is for) is never walked: its own passes must not feed its key.
    Nuke's Node.opHashes() is not used: it covers the current frame and context only, and differs
    between Nuke versions and sessions, so the artist's and the farm's keys would not meet."""
    seen: set[str] = set()
    order: list[list[str]] = []
    linked: list[nuke.Node] = []
    stack = [start]
    while stack:
        node = stack.pop()
        name = node.fullName()
        if name in seen or (exclude is not None and name == exclude.fullName()):
            continue
        seen.add(name)
        knobs = node.knobs()
        values = [f"{knob} {_knob_state(knobs[knob], first, last)}" for knob in sorted(knobs) if _counts(knobs[knob])]
        order.append([node.Class(), *values])
        feeding = {n.fullName() for n in node.dependencies(nuke.INPUTS | nuke.HIDDEN_INPUTS)}
        every = node.dependencies(_LINKS)
        linked.extend(n for n in every if n.fullName() not in feeding and not isinstance(n, nuke.Root))
        stack.extend(reversed(every))
        if isinstance(node, nuke.Group) and not isinstance(node, nuke.Root):
            stack.extend(reversed(node.nodes()))  # a Group's or gizmo's insides change its pixels too
    return order, linked


def _counts(knob: nuke.Knob) -> bool:
    return knob.name() not in _LOOKS_ONLY and knob.Class() not in _NO_PIXELS


def _knob_state(knob: nuke.Knob, first: int, last: int) -> str:
    if isinstance(knob, nuke.File_Knob):
        return _posix(str(knob.evaluate(first)))
    text = knob.toScript()
    try:
        driven = knob.hasExpression() or knob.isAnimated()
    except (TypeError, ValueError, RuntimeError):  # a knob class without values
        driven = False
    if not driven:
        return text
    values = [repr(knob.getValueAt(frame)) for frame in range(first, last + 1)]
    return f"{text} = {' '.join(values)}"


def _posix(path: str) -> str:
    return path.replace("\\", "/")


def _file_stats(starts: list[nuke.Node], first: int, last: int) -> list[list[Any]]:
    stats: dict[str, list[Any]] = {}
    for start in starts:
        for dependency in start.fileDependencies(first, last):  # [[node, [file, ...]], ...]
            files = dependency[1] if isinstance(dependency[1], list) else []
            for path in files:
                key = _posix(str(path))
                try:
                    info = os.stat(str(path))
                except OSError:
                    stats[key] = [key, None, None]
                else:
                    stats[key] = [key, info.st_size, info.st_mtime_ns]
    return [stats[key] for key in sorted(stats)]
