"""What to generate (per scene, saved in the .blend) and the running job's state (per session).

The job settings are made from `RenderJob`'s host fields (bufferany_core.jobs.host_fields), one
property per field, named after it, titled with its label, described by its help:

- flag: BoolProperty.
- choice: EnumProperty of the field's choices.
- passes: one BoolProperty per pass, `use_depth` and `use_normal`.
- text: StringProperty (subtype DIR_PATH for a path field named `*_dir`, FILE_PATH for another path
  field); empty means the field's default.
- int: IntProperty. For a field whose default is "none" (the model's own value), the value one below
  the field's minimum means that default: 0 for a field that starts at 1, -1 for a field that starts
  at 0 (the description says which). An int field without a minimum gets a StringProperty whose
  empty value means the default.

The add-on's own settings (source, frames, frame offset, cache folder, overwrite) are written out below.
"""

import dataclasses
import os
from typing import Any

import bpy

from . import sources
from .core import conventions, jobs

# Blender's own Depth pass means distance (bigger = farther): the add-on starts there.
HOST_DEFAULTS = {"depth_convention": conventions.DepthConvention.DISTANCE.value}
SOURCES = (
    ("FILE", "Image Sequence or Movie", "Frames from a file: one frame of an image sequence, or a movie"),
    ("SCENE", "Scene Render", "Render the scene's frames to the cache folder first, then use them"),
)
FRAME_RANGES = (
    ("SCENE", "Scene Range", "The scene's start to end frame (plus the frame offset)"),
    ("ALL", "Whole Source", "Every frame of the image sequence or movie"),
    ("CUSTOM", "Custom", "The plate frames set below"),
)


def pass_property(name: str) -> str:
    """The BoolProperty that turns the pass `name` on."""
    return f"use_{name}"


def _item_name(choice: str) -> str:
    """`inverse` -> `Inverse`, `fp16` -> `FP16`."""
    return choice.upper() if any(c.isdigit() for c in choice) else choice.replace("_", " ").title()


def default_value(f: dataclasses.Field, spec: jobs.JobField) -> int | None:
    """The IntProperty value that stands for the field's default (None: the property holds the default)."""
    if spec.kind != "int" or f.default is not None or spec.minimum is None:
        return None
    return spec.minimum - 1


def job_properties() -> dict[str, Any]:
    """Property name -> bpy property, for every host field of RenderJob, in declaration order."""
    found: dict[str, Any] = {}
    for f, spec in jobs.host_fields():
        name, description = spec.label.title(), spec.help
        default = HOST_DEFAULTS.get(f.name, f.default)
        sentinel = default_value(f, spec)
        if spec.kind == "passes":
            for item in jobs.PASSES:
                found[pass_property(item)] = bpy.props.BoolProperty(
                    name=item.title(), description=f"Generate the {item} pass", default=item in default
                )
        elif spec.kind == "flag":
            found[f.name] = bpy.props.BoolProperty(name=name, description=description, default=bool(default))
        elif spec.kind == "choice":
            items = tuple((choice, _item_name(choice), "") for choice in spec.choices)
            found[f.name] = bpy.props.EnumProperty(
                name=name, description=description, items=items, default=default
            )
        elif spec.kind == "int" and sentinel is not None:
            found[f.name] = bpy.props.IntProperty(
                name=name,
                description=f"{description}; {sentinel} = the default",
                default=sentinel,
                min=sentinel,
            )
        elif spec.kind == "int" and default is not None:
            minimum = {} if spec.minimum is None else {"min": spec.minimum}
            found[f.name] = bpy.props.IntProperty(
                name=name, description=description, default=default, **minimum
            )
        else:
            if spec.kind == "int":
                description += "; empty = the default"
            subtype = ("DIR_PATH" if f.name.endswith("_dir") else "FILE_PATH") if spec.path else "NONE"
            found[f.name] = bpy.props.StringProperty(
                name=name, description=description, default=default or "", subtype=subtype
            )
    return found


def job_settings(settings: Any) -> dict[str, Any]:
    """The host fields' values in `settings` (a scene's `bufferany`), checked: None where a setting is
    left at "the default"; `//` paths resolved against the .blend file. Raises SourceError naming the
    setting at fault."""
    values: dict[str, Any] = {}
    for f, spec in jobs.host_fields():
        label = spec.label.title()
        if spec.kind == "passes":
            value: Any = tuple(p for p in jobs.PASSES if getattr(settings, pass_property(p)))
            if not value:
                raise sources.SourceError(
                    f"choose at least one pass ({' or '.join(p.title() for p in jobs.PASSES)})"
                )
        else:
            value = getattr(settings, f.name)
        if isinstance(value, str) and spec.kind in ("text", "int"):
            value = value.strip()
            if not value:
                value = f.default
            elif spec.kind == "int":
                try:
                    value = int(value)
                except ValueError:
                    raise sources.SourceError(
                        f"'{label}' must be a whole number or empty, not {value!r}"
                    ) from None
            elif spec.path and value.startswith("//"):
                value = sources.absolute(value, label)
            elif spec.path:
                value = os.path.expanduser(value)
        elif spec.kind == "int" and value == default_value(f, spec):
            value = None
        try:
            jobs.check_field(f.name, spec, value)
        except ValueError as exc:
            raise sources.SourceError(f"'{label}': {exc}") from None
        values[f.name] = value
    return values


class BufferanySettings(bpy.types.PropertyGroup):
    source: bpy.props.EnumProperty(name="Source", items=SOURCES, default="FILE")
    filepath: bpy.props.StringProperty(
        name="Frames",
        description="One frame of an image sequence (shot.1001.exr) or a movie file",
        subtype="FILE_PATH",
    )
    cache_dir: bpy.props.StringProperty(
        name="Cache Folder",
        description="Where the scene's frames are rendered (the passes are written beside them)",
        default="//bufferany_cache/",
        subtype="DIR_PATH",
    )
    frame_range: bpy.props.EnumProperty(name="Frames", items=FRAME_RANGES, default="SCENE")
    frame_start: bpy.props.IntProperty(name="Start", description="First plate frame", default=1001)
    frame_end: bpy.props.IntProperty(name="End", description="Last plate frame", default=1100)
    frame_offset: bpy.props.IntProperty(
        name="Frame Offset",
        description=(
            "The plate's frame number at scene frame F is F + this (plate 1001-1100 on scene frames "
            "1-100: 1000). The passes keep the plate's numbers and show on the same scene frames"
        ),
        default=0,
    )
    overwrite: bpy.props.BoolProperty(
        name="Overwrite", description="Render again the frames already finished with the same settings"
    )


BufferanySettings.__annotations__.update(job_properties())


class BufferanyStatus(bpy.types.PropertyGroup):
    running: bpy.props.BoolProperty(name="Running")
    progress: bpy.props.FloatProperty(name="Progress", min=0.0, max=100.0, subtype="PERCENTAGE")
    message: bpy.props.StringProperty(name="Status")
    job_id: bpy.props.StringProperty(name="Job")
    frames_done: bpy.props.StringProperty(
        name="Frames Done", description="Frames written or already finished"
    )
    frames_total: bpy.props.IntProperty(name="Frames", description="Frames the job renders")
    last_error: bpy.props.StringProperty(name="Last Error", description="Why the last run failed")


CLASSES = (BufferanySettings, BufferanyStatus)


def register() -> None:
    bpy.types.Scene.bufferany = bpy.props.PointerProperty(type=BufferanySettings)
    bpy.types.WindowManager.bufferany_status = bpy.props.PointerProperty(type=BufferanyStatus)


def unregister() -> None:
    del bpy.types.WindowManager.bufferany_status
    del bpy.types.Scene.bufferany
