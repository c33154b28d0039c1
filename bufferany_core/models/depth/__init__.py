"""Depth models: Depth Anything V2 (image prior), Video Depth Anything, Buffer Anytime (prior + temporal blocks).

`load_depth_predictor(name, weights=..., ...)` returns a `PassPredictor` for the pipeline;
`build_depth_model(name)` the bare `nn.Module` for training. Names: `DEPTH_MODELS`.
"""

from bufferany_core.models.depth.buffer_anytime import BufferAnytimeConfig, BufferAnytimeDepth
from bufferany_core.models.depth.catalog import (
    DEFAULT_DEPTH_MODEL,
    DEPTH_MODELS,
    DepthModelEntry,
    build_depth_model,
    get_entry,
)
from bufferany_core.models.depth.depth_anything import SIZES, DepthAnythingV2
from bufferany_core.models.depth.predictor import DepthPredictor, load_depth_predictor
from bufferany_core.models.depth.temporal_io import load_temporal_depth, save_temporal_depth
from bufferany_core.models.depth.video_depth_anything import VideoDepthAnything
from bufferany_core.models.weights import RandomWeights

__all__ = [
    "DEFAULT_DEPTH_MODEL",
    "DEPTH_MODELS",
    "SIZES",
    "BufferAnytimeConfig",
    "BufferAnytimeDepth",
    "DepthAnythingV2",
    "DepthModelEntry",
    "DepthPredictor",
    "RandomWeights",
    "VideoDepthAnything",
    "build_depth_model",
    "get_entry",
    "load_depth_predictor",
    "load_temporal_depth",
    "save_temporal_depth",
]
