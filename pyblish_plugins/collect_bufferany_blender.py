"""Collect the Buffer Anytime settings of the open .blend's scenes (host side: `bpy` and the standard
library; the Buffer Anytime add-on registers `scene.bufferany`).

A scene is collected when it names its frames: an image sequence or movie (`Frames`), or the
`Scene Render` source, whose frames the add-on renders to its cache folder. The passes are where the
add-on writes them: `<name>_buffers.####.exr` beside the frames. Missing passes are rendered through
the bufferany server (`render` = "service"; the context may set another method).
"""

import os
import re
import sys

import pyblish.api

from bufferany_core import conventions
from bufferany_core.publish import instances as keys

_LAST_NUMBER = re.compile(r"^(?P<head>.*?)(?P<digits>\d+)(?P<tail>\D*)$")
_MOVIES = (".mov", ".mp4", ".m4v", ".mkv", ".avi", ".webm", ".mxf")


class CollectBufferanyBlender(pyblish.api.ContextPlugin):
    """One `bufferany.passes` instance per scene whose Buffer Anytime settings name frames."""

    order = pyblish.api.CollectorOrder
    hosts = ["blender"]
    label = "bufferany: Blender scenes"

    def process(self, context):
        import bpy

        for scene in bpy.data.scenes:
            settings = getattr(scene, "bufferany", None)
            if settings is None or (settings.source == "FILE" and not settings.filepath):
                continue
            fields = _job_settings(settings)
            passes = list(fields["passes"])
            if settings.source == "SCENE":
                folder = os.path.normpath(bpy.path.abspath(settings.cache_dir))
                plate = os.path.join(
                    folder, f"{bpy.path.clean_name(scene.name)}.{'#' * conventions.OUTPUT_PADDING}.exr"
                )
                scale = scene.render.resolution_percentage / 100
                resolution = [
                    round(scene.render.resolution_x * scale),
                    round(scene.render.resolution_y * scale),
                ]
                aspect = scene.render.pixel_aspect_x / scene.render.pixel_aspect_y
            else:
                first_file = os.path.normpath(bpy.path.abspath(settings.filepath))
                plate = _pattern(first_file)
                # the plate's own pixel aspect (EXR header), read by the add-on's one rule
                resolution, aspect = (
                    _file_size(bpy, first_file),
                    _addon(settings).sources.exr_pixel_aspect(first_file),
                )
            first, last = _frame_range(scene, settings, plate)
            context.create_instance(
                scene.name,
                family=keys.FAMILY,
                families=[keys.FAMILY],
                **{
                    keys.PLATE: plate,
                    keys.OUTPUT: _passes_pattern(plate),
                    keys.FRAME_START: first,
                    keys.FRAME_END: last,
                    keys.PASSES: passes,
                    keys.RESOLUTION: resolution,
                    keys.PIXEL_ASPECT: aspect,
                    keys.RENDER: context.data.get(keys.RENDER, "service"),
                    keys.RENDER_JOB: _job_fields(fields),
                    "source": bpy.data.filepath,
                    "blenderScene": scene.name,
                },
            )
            self.log.info(f"scene {scene.name}: frames {first}-{last} of {plate}")


def _pattern(path):
    """`shot.####.exr` for one frame `shot.1001.exr` (a movie stays itself)."""
    stem, extension = os.path.splitext(os.path.basename(path))
    match = _LAST_NUMBER.match(stem)
    if extension.lower() in _MOVIES or match is None:
        return path
    name = f"{match['head']}{'#' * len(match['digits'])}{match['tail']}{extension}"
    return os.path.join(os.path.dirname(path), name)


def _passes_pattern(plate):
    """Where the pipeline writes passes by default: `shot.####.exr` -> `shot_buffers.####.exr`,
    `clip.mp4` -> `clip_buffers.####.exr`."""
    folder, name = os.path.split(plate)
    hashes = re.search(r"#+", name)
    if hashes is None:
        stem, separator, padding, rest = os.path.splitext(name)[0], ".", conventions.OUTPUT_PADDING, ""
    else:
        head = name[: hashes.start()]
        stem = head.rstrip("._-")
        separator = head[len(stem) :] or "."
        padding = len(hashes[0]) if len(hashes[0]) > 1 else conventions.OUTPUT_PADDING
        tail = name[hashes.end() :]
        rest = tail.rsplit(".", 1)[0] if "." in tail else tail
    return os.path.join(folder, f"{stem}{conventions.OUTPUT_SUFFIX}{separator}{'#' * padding}{rest}.exr")


def _frame_range(scene, settings, plate):
    if settings.source == "SCENE" or settings.frame_range == "SCENE":
        offset = _addon(settings).sources.frame_offset(settings)  # plate frame = scene frame + offset
        return scene.frame_start + offset, scene.frame_end + offset
    if settings.frame_range == "CUSTOM":
        return settings.frame_start, settings.frame_end
    folder, name = os.path.split(plate)
    hashes = re.search(r"#+", name)
    if hashes is None:
        raise ValueError(f"scene {scene.name}: 'Whole Source' of a movie: choose the Scene or a Custom range")
    number = re.compile(re.escape(name[: hashes.start()]) + r"(\d+)" + re.escape(name[hashes.end() :]) + "$")
    frames = sorted(int(m[1]) for n in os.listdir(folder) if (m := number.match(n)))
    if not frames:
        raise FileNotFoundError(f"scene {scene.name}: no frames match {plate}")
    return frames[0], frames[-1]


def _file_size(bpy, path):
    """[width, height] of the first frame or the movie, as Blender reads it."""
    loader = bpy.data.movieclips if os.path.splitext(path)[1].lower() in _MOVIES else bpy.data.images
    item = loader.load(path, check_existing=True)
    return [int(item.size[0]), int(item.size[1])]


def _addon(settings):
    """The add-on's package, found through the settings' class: its module name depends on how it
    was installed (`blender_addon`, `bufferany`, `bl_ext.user_default.bufferany`)."""
    return sys.modules[type(settings).__module__.rsplit(".", 1)[0]]


def _job_settings(settings):
    """The add-on's job settings as RenderJob fields, checked (its `properties.job_settings`)."""
    return _addon(settings).properties.job_settings(settings)


# decided by the instance itself (publish.render.job_for refuses them in renderJob)
_INSTANCE_FIELDS = ("passes", "shot_range")


def _job_fields(fields):
    """Every job setting that is set (the passes are the instance's own), and the plate carried into
    the output: what the add-on renders (the node group's Image output)."""
    found = {
        name: value for name, value in fields.items() if name not in _INSTANCE_FIELDS and value is not None
    }
    return {**found, "include_plate": True}
