"""What a collected `bufferany.passes` instance holds, and how plugins read it (standard library only).

Every setting is looked up on the instance first, then on the context, so a studio sets a default
once (`context.data["flickerThreshold"] = 0.02`) and a shot overrides it.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from bufferany_core import framepaths
from bufferany_core.errors import BadArgumentsError

FAMILY = "bufferany.passes"

# Instance data keys (documented in README.md, "Publishing (pyblish)").
PLATE = "plate"  # plate sequence, `shot.####.exr` (or a movie file)
OUTPUT = "output"  # passes sequence, `shot_buffers.####.exr`
FRAME_START = "frameStart"
FRAME_END = "frameEnd"
PASSES = "passes"  # ["depth", "normal"]
RESOLUTION = "resolution"  # [width, height] of the plate's data window, when the collector knows it
PIXEL_ASPECT = "pixelAspect"
RENDER = "render"  # None (validate only), "cli", "service" or "nuke": how missing frames get rendered
RENDER_JOB = "renderJob"  # extra RenderJob fields: weights, depth_model, device, window, ...
RENDER_COMMAND = "renderCommand"  # argv prefix for "cli" (default: ["bufferany-render"])
DISCOVERY = "discovery"  # server discovery file for "service" (None: the default one)
START_SERVER = "startServer"
ALLOW_UNTRAINED = "allowUntrained"
NORMAL_TOLERANCE = "normalTolerance"  # allowed | |N| - 1 |
FLICKER_THRESHOLD = "flickerThreshold"  # a number, or {"depth": x, "normal": y}
PUBLISH_ROOT = "publishRoot"
FAILED_FRAMES = "failedFrames"  # set by validators: plugin class name -> frames it failed on
PUBLISHED = "published"  # set by the integrator: {"version", "folder", "pattern"}


def setting(instance: Any, key: str, default: Any = None) -> Any:
    """`key` from the instance's data, else from its context's data, else `default`."""
    if key in instance.data:
        return instance.data[key]
    return instance.context.data.get(key, default)


def frame_range(instance: Any) -> list[int]:
    start, end = instance.data.get(FRAME_START), instance.data.get(FRAME_END)
    if not isinstance(start, int) or not isinstance(end, int) or start > end:
        raise BadArgumentsError(
            f"instance {instance.name!r}: frameStart/frameEnd must be integers with start <= end, "
            f"got {start!r}-{end!r}"
        )
    return list(range(start, end + 1))


def frame_path(pattern: str, frame: int) -> Path:
    """The file of `frame` in a `shot.####.exr` or `shot.%04d.exr` pattern (`framepaths.frame_path`)."""
    return Path(framepaths.frame_path(pattern, frame))


def missing_frames(instance: Any) -> list[int]:
    """Frames of the instance's range whose passes file does not exist."""
    pattern = instance.data[OUTPUT]
    return [frame for frame in frame_range(instance) if not frame_path(pattern, frame).is_file()]


def farm_checks() -> ModuleType:
    """`bufferany_core.publish.checks`, imported when a validator runs: hosts without numpy and
    OpenImageIO get a failed validation that says so, never a publish that skipped its checks."""
    try:
        from bufferany_core.publish import checks  # noqa: PLC0415
    except ImportError as error:
        raise ImportError(
            f"the bufferany validators need numpy and OpenImageIO ({error}); publish from the bufferany "
            "environment (e.g. a farm job running pyblish there)"
        ) from error
    return checks
