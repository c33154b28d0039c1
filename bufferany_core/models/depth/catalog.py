"""The depth models by name: what each is, which official file it loads, and building it without weights."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from torch import nn

from bufferany_core.errors import BadArgumentsError
from bufferany_core.models.depth.buffer_anytime import BufferAnytimeConfig, BufferAnytimeDepth
from bufferany_core.models.depth.depth_anything import DepthAnythingV2
from bufferany_core.models.depth.video_depth_anything import VideoDepthAnything
from bufferany_core.models.weights import WeightSpec, register

Family = Literal["image", "video-depth-anything", "buffer-anytime"]

DEFAULT_DEPTH_MODEL = "video-depth-anything-small"
DEFAULT_WINDOW = 32  # frames per window (Video Depth Anything's training length)
DEFAULT_OVERLAP = 10

for _spec in (
    WeightSpec(
        "depth-anything-v2-small",
        "depth-anything/Depth-Anything-V2-Small",
        "depth_anything_v2_vits.pth",
        "Apache-2.0",
    ),
    WeightSpec(
        "depth-anything-v2-base",
        "depth-anything/Depth-Anything-V2-Base",
        "depth_anything_v2_vitb.pth",
        "CC-BY-NC-4.0",
    ),
    WeightSpec(
        "depth-anything-v2-large",
        "depth-anything/Depth-Anything-V2-Large",
        "depth_anything_v2_vitl.pth",
        "CC-BY-NC-4.0",
    ),
    WeightSpec(
        "video-depth-anything-small",
        "depth-anything/Video-Depth-Anything-Small",
        "video_depth_anything_vits.pth",
        "Apache-2.0",
    ),
):
    register(_spec)


@dataclass(frozen=True)
class DepthModelEntry:
    family: Family
    size: str  # key of depth_anything.SIZES
    weights: str | None  # registry name of the official file it loads (the prior's, for buffer-anytime)


DEPTH_MODELS: dict[str, DepthModelEntry] = {
    "depth-anything-v2-small": DepthModelEntry("image", "vits", "depth-anything-v2-small"),
    "depth-anything-v2-base": DepthModelEntry("image", "vitb", "depth-anything-v2-base"),
    "depth-anything-v2-large": DepthModelEntry("image", "vitl", "depth-anything-v2-large"),
    "depth-anything-v2-tiny": DepthModelEntry("image", "tiny", None),
    "video-depth-anything-small": DepthModelEntry(
        "video-depth-anything", "vits", "video-depth-anything-small"
    ),
    "video-depth-anything-tiny": DepthModelEntry("video-depth-anything", "tiny", None),
    "buffer-anytime-depth-small": DepthModelEntry("buffer-anytime", "vits", "depth-anything-v2-small"),
    "buffer-anytime-depth-base": DepthModelEntry("buffer-anytime", "vitb", "depth-anything-v2-base"),
    "buffer-anytime-depth-large": DepthModelEntry("buffer-anytime", "vitl", "depth-anything-v2-large"),
    "buffer-anytime-depth-tiny": DepthModelEntry("buffer-anytime", "tiny", None),
}


def get_entry(name: str) -> DepthModelEntry:
    try:
        return DEPTH_MODELS[name]
    except KeyError:
        raise BadArgumentsError(f"unknown depth model {name!r}; known: {', '.join(DEPTH_MODELS)}") from None


def build_depth_model(name: str, *, config: BufferAnytimeConfig | None = None) -> nn.Module:
    """The untrained module for `name` (build under `torch.device("meta")` to skip allocating it).

    `config` (buffer-anytime only) chooses the temporal blocks and what trains; by default the
    standard configuration for the prior's size, temporal blocks only."""
    entry = get_entry(name)
    if config is not None and entry.family != "buffer-anytime":
        raise BadArgumentsError(f"{name}: a temporal config applies to buffer-anytime models only")
    if entry.family == "image":
        return DepthAnythingV2.from_size(entry.size)
    if entry.family == "buffer-anytime":
        config = config or BufferAnytimeConfig.for_size(entry.size)
        if config.prior_size != entry.size:
            raise BadArgumentsError(
                f"{name}: temporal config is for prior size {config.prior_size!r}, not {entry.size!r}"
            )
        return BufferAnytimeDepth.from_config(config)
    return VideoDepthAnything.from_size(entry.size)
