"""Training-free stabiliser for per-frame depth and normal passes (torch, flow; the CLI adds frames)."""

from bufferany_core.stabilize.stabilizer import (
    StabilizedDepth,
    StabilizeSettings,
    StreamingStabilizer,
    stabilize_clip,
    stabilize_depth,
    stabilize_normals,
)

__all__ = [
    "StabilizeSettings",
    "StabilizedDepth",
    "StreamingStabilizer",
    "stabilize_clip",
    "stabilize_depth",
    "stabilize_normals",
]
