"""Gradient checkpointing of the temporal blocks: their activations are recomputed in the backward
pass instead of kept, which bounds memory on long clips (attention over up to 110 frames at every
pixel of every fusion level). State-dict keys are unchanged."""

from __future__ import annotations

import functools

from torch import nn
from torch.utils.checkpoint import checkpoint

from bufferany_core.models.temporal import TemporalBlock


def enable_gradient_checkpointing(module: nn.Module) -> int:
    """Recompute every `TemporalBlock` inside `module` during backward; returns how many."""
    blocks = [m for m in module.modules() if isinstance(m, TemporalBlock)]
    for block in blocks:
        block.forward = functools.partial(  # type: ignore[method-assign]
            _checkpointed, functools.partial(TemporalBlock.forward, block)
        )
    return len(blocks)


def _checkpointed(forward, x, num_frames):
    return checkpoint(forward, x, num_frames, use_reentrant=False)
