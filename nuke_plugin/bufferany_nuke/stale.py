"""The stale badge: the passes Read says so when what it shows no longer matches the node's input.

When passes are linked, the node records the cache keys they were made for (the plate key: the whole
upstream state; the passes key: that plus the job settings). A check computes the keys again and
compares: the passes Read inside the Group (and the Group itself, unless the artist coloured it) turns
red with the label "stale: upstream changed" (or "stale: settings changed"), and the status line says
so; it clears when the keys match again (regenerated, or the change undone). Checks run on the
node's knobChanged, on updateUI (while its panel is open; at most every UPDATE_UI_INTERVAL_S) and at
Generate. Main thread only.
"""

from __future__ import annotations

import json
import time
from typing import Any

import nuke

from bufferany_core.errors import BufferanyError
from bufferany_nuke import cache, node
from bufferany_nuke.settings import read_settings, script_name

LINKED = "bufferany_linked"  # hidden: the keys (and frames) of the passes the node shows, as JSON
STALE = "bufferany_stale"  # hidden: why the passes are stale ("" when they are not)
STALE_COLOUR = 0xC83232FF  # tile_color, 0xRRGGBBAA
UPDATE_UI_INTERVAL_S = 2.0  # updateUI runs often; the check walks the upstream graph and stats files
_last_check: dict[str, float] = {}  # node identity -> when updateUI last checked it


def remember(group: nuke.Group, *, key: str, plate_key: str, first: int, last: int) -> None:
    """The passes just linked were made for these keys: the badge clears."""
    text = json.dumps({"key": key, "plate": plate_key, "frames": [first, last]}, sort_keys=True)
    _hidden(group, LINKED).setValue(text)
    mark(group, None)


def linked(group: nuke.Group) -> dict[str, Any] | None:
    knob = group.knob(LINKED)
    if knob is None or not str(knob.value()):
        return None
    try:
        record = json.loads(str(knob.value()))
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def check(group: nuke.Group) -> str | None:
    """Compare the passes shown with the node's current input and settings; badge or clear. Returns why
    they are stale, or None (up to date, nothing linked, or no answer now: no input, proxy mode)."""
    record = linked(group)
    if record is None:
        return None
    try:
        entry = cache.entry_for(group, read_settings(group))
    except (BufferanyError, ValueError, RuntimeError, OSError):
        return current(group) or None  # cannot tell now: leave the badge as it is
    if entry.plate_key != record.get("plate"):
        reason: str | None = "upstream changed"
    elif entry.key != record.get("key"):
        reason = "settings changed"
    else:
        reason = None
    mark(group, reason)
    return reason


def check_throttled(group: nuke.Group) -> str | None:
    """updateUI: check at most every UPDATE_UI_INTERVAL_S per node."""
    identity = group.knob(node.NODE_ID)
    name = str(identity.value()) if identity is not None else group.fullName()
    now = time.monotonic()
    if now - _last_check.get(name, -UPDATE_UI_INTERVAL_S) < UPDATE_UI_INTERVAL_S:
        return current(group) or None
    _last_check[name] = now
    return check(group)


def current(group: nuke.Group) -> str:
    knob = group.knob(STALE)
    return str(knob.value()) if knob is not None else ""


def mark(group: nuke.Group, reason: str | None) -> None:
    """Badge the passes Read (and the Group, unless the artist gave it a colour of its own), or clear."""
    before = current(group)
    if (reason or "") == before:
        return
    _hidden(group, STALE).setValue(reason or "")
    read = node.internal(group, node.PASSES_READ)
    read["tile_color"].setValue(STALE_COLOUR if reason else 0)
    read["label"].setValue(f"stale: {reason}" if reason else "")
    colour = group.knob("tile_color")
    if colour is not None:
        if reason and int(colour.value()) == 0:
            colour.setValue(STALE_COLOUR)
        elif not reason and int(colour.value()) == STALE_COLOUR:
            colour.setValue(0)
    if _busy(group):
        return  # the status line shows the job's progress
    status = group["status"]
    if reason:
        record = linked(group) or {}
        frames = record.get("frames") or ["?", "?"]
        status.setValue(f"stale: {reason} since passes {frames[0]}-{frames[-1]} were made; Generate again")
    elif str(status.value()).startswith("stale:"):
        status.setValue("passes match the input again")


def _busy(group: nuke.Group) -> bool:
    from bufferany_nuke.generate import _RUNNING

    identity = group.knob(node.NODE_ID)
    return identity is not None and (script_name(), str(identity.value())) in _RUNNING


def _hidden(group: nuke.Group, name: str) -> nuke.Knob:
    knob = group.knob(name)
    if knob is None:
        knob = nuke.String_Knob(name, "")
        knob.setFlag(nuke.INVISIBLE)
        group.addKnob(knob)
    return knob
