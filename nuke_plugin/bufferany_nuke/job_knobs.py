"""The node's job knobs: one per host field of `RenderJob`, made and read from the fields' descriptions.

Each field of `bufferany_core.jobs.host_fields()` gets a knob named after it, labelled with its
label, with its help as the tooltip; advanced fields go on the Advanced tab. By kind:

- flag: Boolean_Knob.
- choice: Enumeration_Knob of the field's choices.
- passes: Enumeration_Knob "depth and normal" / "depth" / "normal".
- text: String_Knob (File_Knob for a path field); empty means the field's default.
- int: Int_Knob. For a field whose default is "none" (the model's own value), the knob's value one
  below the field's minimum means that default: 0 for a field that starts at 1, -1 for a field that
  starts at 0 (the tooltip says which). An int field without a minimum gets a String_Knob whose
  empty value means the default.

A node saved before a field existed has no knob for it: reading gives the field's default.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import nuke

from bufferany_core.errors import BadArgumentsError
from bufferany_core.jobs import JobField, check_field, host_fields

PASS_CHOICES = {"depth and normal": ("depth", "normal"), "depth": ("depth",), "normal": ("normal",)}


def default_value(f: dataclasses.Field[Any], spec: JobField) -> int | None:
    """The Int_Knob value that stands for the field's default (None: the knob holds the default itself)."""
    if spec.kind != "int" or f.default is not None or spec.minimum is None:
        return None
    return spec.minimum - 1


def tooltip(f: dataclasses.Field[Any], spec: JobField) -> str:
    sentinel = default_value(f, spec)
    if sentinel is not None:
        return f"{spec.help}; {sentinel} = the default"
    if spec.kind == "int" and f.default is None:
        return f"{spec.help}; empty = the default"
    return spec.help


def make_knob(f: dataclasses.Field[Any], spec: JobField) -> nuke.Knob:
    """The knob for one job field, unattached (`set_default` gives it its starting value)."""
    knob: nuke.Knob
    if spec.kind == "flag":
        knob = nuke.Boolean_Knob(f.name, spec.label, bool(f.default))
    elif spec.kind == "choice":
        knob = nuke.Enumeration_Knob(f.name, spec.label, list(spec.choices))
    elif spec.kind == "passes":
        knob = nuke.Enumeration_Knob(f.name, spec.label, list(PASS_CHOICES))
    elif spec.kind == "int" and (f.default is not None or spec.minimum is not None):
        knob = nuke.Int_Knob(f.name, spec.label)
    elif spec.path:
        knob = nuke.File_Knob(f.name, spec.label)
    else:
        knob = nuke.String_Knob(f.name, spec.label)
    knob.setTooltip(tooltip(f, spec))
    return knob


def set_default(knob: nuke.Knob, f: dataclasses.Field[Any], spec: JobField) -> None:
    """Put the field's default in its knob (once the knob is on the node)."""
    sentinel = default_value(f, spec)
    if sentinel is not None:
        knob.setValue(sentinel)
    elif spec.kind == "passes":
        knob.setValue(next(name for name, passes in PASS_CHOICES.items() if passes == f.default))
    elif f.default is not None:
        knob.setValue(f.default)


def add_job_knobs(group: nuke.Node, *, advanced: bool) -> None:
    """Add the knobs of the basic (or the advanced) job fields to `group`, in declaration order."""
    for f, spec in host_fields():
        if spec.advanced == advanced:
            knob = make_knob(f, spec)
            group.addKnob(knob)
            set_default(knob, f, spec)


def read_job(group: nuke.Node) -> dict[str, Any]:
    """Every host field's value from `group`'s knobs, checked; raises BadArgumentsError naming the knob."""
    job: dict[str, Any] = {}
    for f, spec in host_fields():
        knob = group.knob(f.name)
        value = f.default if knob is None else _knob_value(group, knob, f, spec)
        try:
            check_field(f.name, spec, value)
        except BadArgumentsError as exc:
            raise BadArgumentsError(f"{group.fullName()}: knob '{spec.label}': {exc}") from None
        job[f.name] = value
    return job


def _knob_value(group: nuke.Node, knob: nuke.Knob, f: dataclasses.Field[Any], spec: JobField) -> Any:
    value = knob.value()
    if spec.kind == "flag":
        return bool(value)
    if spec.kind == "choice":
        return str(value)
    if spec.kind == "passes":
        try:
            return PASS_CHOICES[str(value)]
        except KeyError:
            raise BadArgumentsError(
                f"{group.fullName()}: knob '{spec.label}' must be one of {', '.join(PASS_CHOICES)}, got {value!r}"
            ) from None
    if spec.kind == "int" and isinstance(knob, nuke.Int_Knob):
        number = int(value)
        sentinel = default_value(f, spec)
        if sentinel is None:
            return number
        if number < sentinel:
            raise BadArgumentsError(
                f"{group.fullName()}: knob '{spec.label}' must be at least {spec.minimum}, "
                f"or {sentinel} for the default; got {number}"
            )
        return None if number == sentinel else number
    text = str(value).strip()
    if not text:
        return f.default
    if spec.kind == "int":
        try:
            return int(text)
        except ValueError:
            raise BadArgumentsError(
                f"{group.fullName()}: knob '{spec.label}' must be a whole number or empty, got {text!r}"
            ) from None
    return text
