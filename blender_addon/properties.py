"""What to generate (per scene, saved in the .blend) and the running job's state (per session)."""

from __future__ import annotations

import bpy

from .core import conventions

_DISTANCE, _INVERSE = conventions.DepthConvention.DISTANCE.value, conventions.DepthConvention.INVERSE.value
SOURCES = (
    ("FILE", "Image Sequence or Movie", "Frames from a file: one frame of an image sequence, or a movie"),
    ("SCENE", "Scene Render", "Render the scene's frames to the cache folder first, then use them"),
)
FRAME_RANGES = (
    ("SCENE", "Scene Range", "The scene's start to end frame"),
    ("ALL", "Whole Source", "Every frame of the image sequence or movie"),
    ("CUSTOM", "Custom", "The frames set below"),
)
DEPTH_CONVENTIONS = (
    (_DISTANCE, "Distance", "Bigger = farther, what Blender's own Depth pass means"),
    (_INVERSE, "Inverse", "Bigger = closer (relative inverse depth, as Nuke's 1/z)"),
)
DEVICES = (
    ("auto", "Server Default", "The device the server was started with"),
    ("cpu", "CPU", ""),
    ("cuda", "GPU (CUDA)", ""),
)


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
    frame_start: bpy.props.IntProperty(name="Start", default=1001)
    frame_end: bpy.props.IntProperty(name="End", default=1100)
    use_depth: bpy.props.BoolProperty(name="Depth", default=True)
    use_normal: bpy.props.BoolProperty(name="Normal", default=True)
    depth_convention: bpy.props.EnumProperty(name="Depth", items=DEPTH_CONVENTIONS, default=_DISTANCE)
    stabilize: bpy.props.BoolProperty(
        name="Stabilize", description="Run the optical-flow stabiliser as a final stage"
    )
    overwrite: bpy.props.BoolProperty(
        name="Overwrite", description="Render again the frames already finished with the same settings"
    )
    device: bpy.props.EnumProperty(name="Device", items=DEVICES, default="auto")
    depth_model: bpy.props.StringProperty(
        name="Depth Model", description="Registry name (empty: the default)"
    )
    normal_model: bpy.props.StringProperty(
        name="Normal Model", description="Registry name (empty: the default)"
    )
    weights: bpy.props.StringProperty(
        name="Weights",
        description="Weights file, or random[:SEED] for untrained weights (empty: the registry's)",
    )


class BufferanyStatus(bpy.types.PropertyGroup):
    running: bpy.props.BoolProperty(name="Running")
    progress: bpy.props.FloatProperty(name="Progress", min=0.0, max=100.0, subtype="PERCENTAGE")
    message: bpy.props.StringProperty(name="Status")
    job_id: bpy.props.StringProperty(name="Job")


CLASSES = (BufferanySettings, BufferanyStatus)


def register() -> None:
    bpy.types.Scene.bufferany = bpy.props.PointerProperty(type=BufferanySettings)
    bpy.types.WindowManager.bufferany_status = bpy.props.PointerProperty(type=BufferanyStatus)


def unregister() -> None:
    del bpy.types.WindowManager.bufferany_status
    del bpy.types.Scene.bufferany
