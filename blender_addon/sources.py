"""Where a job's frames come from: a file the user picked, or the scene rendered to a cache folder."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import bpy

from . import compat


class SourceError(ValueError):
    """The settings do not name usable frames; the message says which setting to change."""


def absolute(path: str, setting: str) -> str:
    """`path` with Blender's `//` resolved; the server needs absolute paths."""
    if not path:
        raise SourceError(f"set '{setting}'")
    if path.startswith("//") and not bpy.data.filepath:
        raise SourceError(
            f"'{setting}' is relative to the .blend file: save the file first, or give an absolute path"
        )
    resolved = os.path.normpath(bpy.path.abspath(path))
    if not os.path.isabs(resolved):
        raise SourceError(f"'{setting}' must be an absolute path, not {path!r}")
    return resolved


EXR_MAGIC = 20000630
HEADER_LIMIT = 1 << 20  # an EXR header larger than this is not one the add-on needs to read


def exr_pixel_aspect(path: str) -> float | None:
    """The `pixelAspectRatio` of an OpenEXR file's (first part's) header; None for a file that is not
    an EXR or has none. Reads the header only, with the standard library."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(HEADER_LIMIT)
    except OSError:
        return None
    if len(data) < 8 or struct.unpack_from("<i", data)[0] != EXR_MAGIC:
        return None
    position = 8
    while position < len(data):
        name_end = data.find(b"\0", position)
        if name_end <= position:  # the empty name ends the header
            return None
        type_end = data.find(b"\0", name_end + 1)
        if type_end < 0 or type_end + 5 > len(data):
            return None
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        value = type_end + 5
        if data[position:name_end] == b"pixelAspectRatio" and data[name_end + 1 : type_end] == b"float":
            aspect = struct.unpack_from("<f", data, value)[0] if size == 4 else 0.0
            return aspect if aspect > 0 else None
        position = value + size
    return None


def frame_offset(settings) -> int:
    """Plate frame = scene frame + this: the Frame Offset of a file source (a scene render's frames
    are the scene's own)."""
    return settings.frame_offset if settings.source == "FILE" else 0


def frame_spec(scene: bpy.types.Scene, settings) -> str | None:
    """The job's `frames` field, in the plate's frame numbers; None for the whole source."""
    if settings.source == "SCENE" or settings.frame_range == "SCENE":
        offset = frame_offset(settings)
        first, last = scene.frame_start + offset, scene.frame_end + offset
    elif settings.frame_range == "CUSTOM":
        first, last = settings.frame_start, settings.frame_end
    else:
        return None
    if last < first:
        raise SourceError(f"the frame range {first}-{last} is empty")
    return f"{first}-{last}"


class SceneRender:
    """Renders the scene's frames, one per `step()`, to `<folder>/<scene>.####.exr`: linear RGBA
    half-float EXR, the compositor and sequencer off (the compositor may already read this add-on's
    own passes). The scene's render settings are restored by `close()`."""

    def __init__(self, scene: bpy.types.Scene, first: int, last: int, folder: str):
        self.scene_name = scene.name
        self.frames = list(range(first, last + 1))
        self.folder = Path(folder)
        stem = bpy.path.clean_name(scene.name)
        self.pattern = str(self.folder / f"{stem}.####.exr")
        self._paths = {frame: str(self.folder / f"{stem}.{frame:04d}.exr") for frame in self.frames}
        self._next = 0
        self._saved: list[tuple[object, str, object]] | None = None

    @property
    def done(self) -> int:
        return self._next

    def _override(self, scene: bpy.types.Scene) -> None:
        render, image = scene.render, scene.render.image_settings
        changes = [(render, "use_compositing", False), (render, "use_sequencer", False)]
        changes += compat.output_format_changes(image, "OPEN_EXR")
        changes += [
            (image, "color_mode", "RGBA"),
            (image, "color_depth", "16"),
            (image, "exr_codec", "ZIP"),
            (render, "filepath", render.filepath),
        ]
        self._saved = [(owner, name, getattr(owner, name)) for owner, name, _ in changes]
        self._saved.append((scene, "frame_current", scene.frame_current))
        for owner, name, value in changes:
            setattr(owner, name, value)

    def step(self) -> bool:
        """Render the next frame; True once every frame is on disk."""
        if self._next >= len(self.frames):
            return True
        scene = bpy.data.scenes[self.scene_name]
        if self._saved is None:
            if scene.camera is None:
                raise SourceError(f"scene '{scene.name}' has no camera to render with")
            self.folder.mkdir(parents=True, exist_ok=True)
            self._override(scene)
        frame = self.frames[self._next]
        scene.frame_set(frame)
        scene.render.filepath = self._paths[frame]
        # A frame left by an earlier generate must not pass the check below when this render writes none.
        Path(self._paths[frame]).unlink(missing_ok=True)
        bpy.ops.render.render(write_still=True, scene=scene.name)
        if not os.path.isfile(self._paths[frame]):
            raise SourceError(
                f"rendering frame {frame} of scene '{scene.name}' wrote no {self._paths[frame]}"
            )
        self._next += 1
        return self._next >= len(self.frames)

    def close(self) -> None:
        """Put the scene's settings back, in the order they were saved: the media type and the file
        format before the depth and codec, whose choices depend on the format."""
        if self._saved is None:
            return
        for owner, name, value in self._saved:
            if name == "frame_current":
                owner.frame_set(value)
            else:
                setattr(owner, name, value)
        self._saved = None
