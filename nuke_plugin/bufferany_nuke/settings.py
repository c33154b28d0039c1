"""The node's knobs read once on the main thread into plain values the worker thread may use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nuke

from bufferany_core.errors import BadArgumentsError, FrameRangeError
from bufferany_nuke.job_knobs import read_job

CACHE_ENV = "BUFFERANY_NUKE_CACHE"


@dataclass(frozen=True)
class Connection:
    """How to reach the server: its discovery file (None: the default one), which holds host, port
    and token, so no secret is ever stored in the Nuke script."""

    discovery: str | None = None
    start_server: bool = False

    def connect_kwargs(self) -> dict[str, Any]:
        return {"discovery": self.discovery, "start_server": self.start_server}


@dataclass(frozen=True)
class NodeSettings:
    job: dict[str, Any]  # every host field of RenderJob (job_knobs.read_job), by field name
    first: int
    last: int
    connection: Connection
    cache_root: Path
    force: bool

    @property
    def passes(self) -> tuple[str, ...]:
        return tuple(self.job["passes"])

    def result_fields(self) -> dict[str, Any]:
        """The cache key's settings part: every job field's value and the frame range."""
        job = {name: list(value) if isinstance(value, tuple) else value for name, value in self.job.items()}
        return {"job": job, "frames": [self.first, self.last]}


def read_settings(group: nuke.Group) -> NodeSettings:
    """Knob values of `group`, validated; raises FrameRangeError / BadArgumentsError naming the knob."""
    name = group.fullName()
    plate = group.input(0)
    if plate is None:
        raise BadArgumentsError(f"{name}: no input; connect the plate to the node")
    first, last = _frame_range(group, plate)

    def text(knob: str) -> str | None:
        return str(group[knob].value()).strip() or None

    return NodeSettings(
        job=read_job(group),
        first=first,
        last=last,
        connection=Connection(discovery=text("server"), start_server=bool(group["start_server"].value())),
        cache_root=_cache_root(text("cache_dir")),
        force=bool(group["force"].value()),
    )


def _frame_range(group: nuke.Group, plate: nuke.Node) -> tuple[int, int]:
    available = plate.frameRange()
    lo, hi = available.first(), available.last()
    if group["use_input_range"].value():
        return lo, hi
    first, last = int(group["first_frame"].value()), int(group["last_frame"].value())
    if first > last:
        raise FrameRangeError(
            f"{group.fullName()}: frame range {first}-{last}: the first frame is after the last"
        )
    if first < lo or last > hi:
        raise FrameRangeError(
            f"{group.fullName()}: frame range {first}-{last} lies outside the input's frames {lo}-{hi} "
            f"(input node {plate.fullName()})"
        )
    return first, last


def _cache_root(knob_value: str | None) -> Path:
    folder = knob_value or os.environ.get(CACHE_ENV) or "~/.bufferany/nuke_cache"
    return Path(folder).expanduser()
