"""Depth models: Depth Anything V2 (image prior), Video Depth Anything, Buffer Anytime (prior + temporal blocks).

`load_depth_predictor(name, *, weights=..., ...)` returns a `PassPredictor` for the pipeline;
`build_depth_model(name)` the bare `nn.Module` for training. Names: `models.catalog.DEPTH_MODELS`.
"""

from bufferany_core.models.depth.buffer_anytime import BufferAnytimeConfig, BufferAnytimeDepth
from bufferany_core.models.depth.build import build_depth_model
from bufferany_core.models.depth.depth_anything import SIZES, DepthAnythingV2
from bufferany_core.models.depth.predictor import DepthPredictor, load_depth_predictor
from bufferany_core.models.depth.video_depth_anything import VideoDepthAnything

__all__ = [
    "SIZES",
    "BufferAnytimeConfig",
    "BufferAnytimeDepth",
    "DepthAnythingV2",
    "DepthPredictor",
    "VideoDepthAnything",
    "build_depth_model",
    "load_depth_predictor",
]
