"""The single source of truth for pass conventions and header attribute names.

Every writer, reader, host adapter and validator takes channel names, value conventions and
metadata keys from here (standard library only: the hosts import this module).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

# --- Channel names -------------------------------------------------------------------------------
# Data channels are never named R/G/B: lossy DWA compression treats those as colour.
DEPTH_LAYER = "depth"
DEPTH_CHANNEL = "depth.Z"
NORMAL_LAYER = "N"
NORMAL_CHANNELS = ("N.X", "N.Y", "N.Z")
PLATE_CHANNELS = ("R", "G", "B", "A")


def depth_channel(layer: str = DEPTH_LAYER) -> str:
    """Channel name of the depth pass for a (possibly user-chosen) layer name."""
    _check_layer_name(layer)
    return f"{layer}.Z"


def normal_channels(layer: str = NORMAL_LAYER) -> tuple[str, str, str]:
    """Channel names of the normal pass for a (possibly user-chosen) layer name."""
    _check_layer_name(layer)
    return (f"{layer}.X", f"{layer}.Y", f"{layer}.Z")


def _check_layer_name(layer: str) -> None:
    if not layer or "." in layer or not layer.replace("_", "").isalnum():
        raise ValueError(f"layer name {layer!r} must be non-empty, alphanumeric or '_', without '.'")


# --- Value conventions ---------------------------------------------------------------------------
class DepthConvention(str, enum.Enum):
    """What the numbers in `depth.Z` mean."""

    # Relative inverse depth, bigger = closer (Nuke ScanlineRender / DepthGenerator 1/z).
    # Affine-consistent over the whole shot: one scale and shift for every frame.
    INVERSE = "inverse"
    # Relative distance, bigger = farther (what Blender's own Depth pass means).
    DISTANCE = "distance"


DEFAULT_DEPTH_CONVENTION = DepthConvention.INVERSE


class NormalSpace(str, enum.Enum):
    CAMERA = "camera"
    WORLD = "world"


DEFAULT_NORMAL_SPACE = NormalSpace.CAMERA
# Axis convention of camera-space normals written by bufferany (OpenGL style).
NORMAL_AXES = "x-right y-up z-towards-camera"


class NormalPrecision(str, enum.Enum):
    HALF = "half"
    FLOAT = "float"


DEFAULT_NORMAL_PRECISION = NormalPrecision.HALF
DEPTH_PRECISION = "float"

# Lossless only: data passes must survive bit-exact.
LOSSLESS_COMPRESSIONS = ("zip", "zips", "piz", "rle", "none")
DEFAULT_COMPRESSION = "zip"

# --- Files ---------------------------------------------------------------------------------------
# Default output: a sibling sequence `<name>_buffers.####.exr` next to the plate.
OUTPUT_SUFFIX = "_buffers"
OUTPUT_PADDING = 4

# --- Header attributes (all under `bufferany/`) ----------------------------------------------------
HEADER_PREFIX = "bufferany/"


@dataclass(frozen=True)
class HeaderKeys:
    version: str = HEADER_PREFIX + "version"
    passes: str = HEADER_PREFIX + "passes"
    depth_convention: str = HEADER_PREFIX + "depth_convention"
    normal_space: str = HEADER_PREFIX + "normal_space"
    normal_axes: str = HEADER_PREFIX + "normal_axes"
    depth_model: str = HEADER_PREFIX + "depth_model"
    normal_model: str = HEADER_PREFIX + "normal_model"
    weights_sha256: str = HEADER_PREFIX + "weights_sha256"
    temporal_weights_sha256: str = HEADER_PREFIX + "temporal_weights_sha256"  # trained temporal layers, per pass
    untrained: str = HEADER_PREFIX + "untrained"
    frame_range: str = HEADER_PREFIX + "frame_range"
    shot_range: str = HEADER_PREFIX + "shot_range"
    input_colorspace: str = HEADER_PREFIX + "input_colorspace"
    stabilized: str = HEADER_PREFIX + "stabilized"  # 1 when any pass went through the stabiliser
    stabilize_mode: str = HEADER_PREFIX + "stabilize"  # the job's --stabilize: auto | on | off
    source: str = HEADER_PREFIX + "source"
    settings: str = HEADER_PREFIX + "settings"  # fingerprint of the render settings (re-runs skip matching frames)
    settings_values: str = HEADER_PREFIX + "settings_values"  # those settings as JSON: a re-run names what differs
    precision: str = HEADER_PREFIX + "precision"  # fp32 | fp16 | bf16: the float type the models ran in
    depth_rule: str = HEADER_PREFIX + "depth_rule"  # how `distance` depth derives from inverse depth
    # this frame's depth.Z as written (finite values), JSON {"p01", "p99", "min", "max"}: hosts set a
    # preview's near/far from it without reading pixels (percentiles 1 and 99 ignore a few outliers)
    depth_range: str = HEADER_PREFIX + "depth_range"

    def pass_stabilized(self, pass_name: str) -> str:
        """Per pass: 1 when the stabiliser ran on it, else 0 (`depth_stabilized`, `normal_stabilized`)."""
        return f"{HEADER_PREFIX}{pass_name}_stabilized"

    def pass_stabilize_reason(self, pass_name: str) -> str:
        """Per pass: why it was or was not stabilised, in words (`depth_stabilize_reason`, ...)."""
        return f"{HEADER_PREFIX}{pass_name}_stabilize_reason"


HEADER = HeaderKeys()
