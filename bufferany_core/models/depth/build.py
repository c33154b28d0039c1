"""Building a depth model of the catalogue (`models.catalog.DEPTH_MODELS`) without its weights."""

from __future__ import annotations

from bufferany_core.errors import BadArgumentsError
from bufferany_core.models.catalog import get_model_entry
from bufferany_core.models.depth.buffer_anytime import BufferAnytimeConfig, BufferAnytimeDepth
from bufferany_core.models.depth.depth_anything import DepthAnythingV2
from bufferany_core.models.depth.video_depth_anything import VideoDepthAnything

DepthModel = DepthAnythingV2 | VideoDepthAnything | BufferAnytimeDepth


def build_depth_model(name: str | None, *, config: BufferAnytimeConfig | None = None) -> DepthModel:
    """The untrained module for `name` (None: the default depth model); build it under
    `torch.device("meta")` to skip allocating it.

    `config` (buffer-anytime only) chooses the temporal blocks and what trains; by default the
    standard configuration for the prior's size, temporal blocks only."""
    entry = get_model_entry("depth", name)
    if config is not None and entry.architecture != "buffer-anytime":
        raise BadArgumentsError(f"{entry.name}: a temporal config applies to buffer-anytime models only")
    if entry.architecture == "image":
        return DepthAnythingV2.from_size(entry.size)
    if entry.architecture == "buffer-anytime":
        config = config or BufferAnytimeConfig.for_size(entry.size)
        if config.prior_size != entry.size:
            raise BadArgumentsError(
                f"{entry.name}: temporal config is for prior size {config.prior_size!r}, not {entry.size!r}"
            )
        return BufferAnytimeDepth(config=config)
    return VideoDepthAnything.from_size(entry.size)
