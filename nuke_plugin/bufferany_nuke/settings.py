"""The node's knobs read once on the main thread into plain values the worker thread may use."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nuke

from bufferany_core.errors import BadArgumentsError, FrameRangeError
from bufferany_nuke.node import selected_passes

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
    passes: tuple[str, ...]
    depth_model: str | None
    normal_model: str | None
    first: int
    last: int
    stabilize: bool
    depth_convention: str
    weights: str | None
    models_dir: str | None
    device: str
    input_colorspace: str | None
    options: dict[str, Any]
    connection: Connection
    cache_root: Path
    force: bool

    def result_fields(self) -> dict[str, Any]:
        """What decides the passes' pixels (the cache key's settings part)."""
        return {
            "passes": list(self.passes),
            "depth_model": self.depth_model,
            "normal_model": self.normal_model,
            "frames": [self.first, self.last],
            "stabilize": self.stabilize,
            "depth_convention": self.depth_convention,
            "weights": self.weights,
            "models_dir": self.models_dir,
            "input_colorspace": self.input_colorspace,
            "options": self.options,
        }


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
        passes=selected_passes(group),
        depth_model=text("depth_model"),
        normal_model=text("normal_model"),
        first=first,
        last=last,
        stabilize=bool(group["stabilize"].value()),
        depth_convention=str(group["depth_convention"].value()),
        weights=text("weights"),
        models_dir=text("models_dir"),
        device=text("device") or "auto",
        input_colorspace=text("input_colorspace"),
        options=_options(name, text("options")),
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


def _options(name: str, text: str | None) -> dict[str, Any]:
    try:
        options = json.loads(text) if text else {}
    except ValueError as exc:
        raise BadArgumentsError(f"{name}: knob 'model options' is not valid JSON: {exc}") from None
    if not isinstance(options, dict):
        raise BadArgumentsError(f"{name}: knob 'model options' must be a JSON object, got {text}")
    return options


def _cache_root(knob_value: str | None) -> Path:
    folder = knob_value or os.environ.get(CACHE_ENV) or "~/.bufferany/nuke_cache"
    return Path(folder).expanduser()
