"""Optical flow between frames, flow warping and validity masks (torch, torchvision, OpenCV)."""

from bufferany_core.flow.backends import (
    FLOW_NAMES,
    DISFlow,
    FlowEstimator,
    RAFTFlow,
    adjacent_flows,
    build_raft,
    load_flow_estimator,
)
from bufferany_core.flow.masks import (
    DEFAULT_CYCLE_TOLERANCE,
    cycle_consistency_mask,
    depth_edge_mask,
    pair_validity,
)
from bufferany_core.flow.pairs import FramePairs, compute_frame_pairs
from bufferany_core.flow.warp import backward_warp

__all__ = [
    "DEFAULT_CYCLE_TOLERANCE",
    "FLOW_NAMES",
    "DISFlow",
    "FlowEstimator",
    "FramePairs",
    "RAFTFlow",
    "adjacent_flows",
    "backward_warp",
    "build_raft",
    "compute_frame_pairs",
    "cycle_consistency_mask",
    "depth_edge_mask",
    "load_flow_estimator",
    "pair_validity",
]
