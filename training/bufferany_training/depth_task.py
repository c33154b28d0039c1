"""Depth fine-tuning: the frozen Depth Anything V2 ViT, trainable temporal blocks (and head).

loss = w_reg * L_reg(one random frame; target = the frozen image model's prediction)
     + w_stable * L_stable(video prediction, flows, cycle and depth-edge masks)
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
from torch import nn

from bufferany_core.errors import BadArgumentsError
from bufferany_core.losses import depth_regularization_loss, stable_loss
from bufferany_core.models.catalog import get_model_entry
from bufferany_core.models.depth import (
    BufferAnytimeConfig,
    BufferAnytimeDepth,
    build_depth_model,
    load_depth_predictor,
)
from bufferany_core.models.weights import parse_weights_arg
from bufferany_training.config import TrainConfig
from bufferany_training.stable import clip_normalize, coverage, stable_validity, warp_error
from bufferany_training.task import TemporalWeightsTask


class DepthObjective(nn.Module):
    """What DistributedDataParallel wraps: frames (B, T, 3, h, w) sRGB in [0, 1] ->
    (video prediction, image-model prediction), each (B, T, h, w), sharing one ViT pass."""

    def __init__(self, model: BufferAnytimeDepth):
        super().__init__()
        self.model = model

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_with_prior(self.model.normalize(frames))


def load_training_model(config: TrainConfig) -> tuple[BufferAnytimeDepth, str | None]:
    """The video model with the prior's weights loaded (registry, path or random), and the prior's
    sha256 (None for random weights); `model.train_head` decides whether the head trains."""
    entry = get_model_entry("depth", config.model.name)
    if entry.architecture != "buffer-anytime":
        raise BadArgumentsError(f"model.name {config.model.name!r} is not a buffer-anytime depth model")
    predictor = load_depth_predictor(
        entry.name,
        weights=parse_weights_arg(config.model.weights or None),
        models_dir=Path(config.model.models_dir) if config.model.models_dir else None,
    )
    loaded = predictor.model
    if not isinstance(loaded, BufferAnytimeDepth):  # guaranteed by the architecture check above
        raise TypeError(f"{entry.name} did not build a BufferAnytimeDepth")
    temporal = BufferAnytimeConfig.for_size(entry.size, train_head=config.model.train_head)
    if temporal.temporal.max_frames < config.data.frames:
        raise BadArgumentsError(
            f"data.frames {config.data.frames} exceeds the temporal blocks' {temporal.temporal.max_frames} frames"
        )
    model = build_depth_model(entry.name, config=temporal)
    if not isinstance(model, BufferAnytimeDepth):  # the same architecture check
        raise TypeError(f"{entry.name} did not build a BufferAnytimeDepth")
    model.load_prior_state_dict(loaded.prior.state_dict())
    model.temporal_blocks.load_state_dict(loaded.temporal_blocks.state_dict(), strict=True)
    return model, predictor.info.weights_sha256


def regularization_frames(indices: torch.Tensor, frames: int, *, seed: int) -> list[int]:
    """The random frame L_reg looks at, for each sample of a batch: a function of (seed, sample)."""
    return [random.Random(f"{seed}:{int(i)}:reg").randrange(frames) for i in indices]


class DepthTask(TemporalWeightsTask[BufferAnytimeDepth]):
    name = "depth"

    def __init__(self, config: TrainConfig):
        self.config = config
        self.model, self.prior_sha256 = load_training_model(config)
        self.objective = DepthObjective(self.model)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return self.model.trainable_parameters()

    def train_mode(self) -> None:
        self.model.train()
        self.model.prior.eval()  # frozen: no dropout or statistics of its own

    def step(
        self, module: nn.Module, batch: dict[str, torch.Tensor], *, amp, log: bool
    ) -> dict[str, torch.Tensor]:
        """One forward and backward on `batch` (frames, flows, index); returns detached metrics."""
        cfg = self.config
        frames = batch["frames"]  # (B, T, 3, h, w)
        with amp():
            video, prior = module(frames)  # (B, T, h, w) each
        video, prior = video.float(), prior.float()
        b, t = video.shape[:2]
        picks = regularization_frames(batch["index"], t, seed=cfg.seed)
        rows = torch.arange(b, device=video.device)
        reg = depth_regularization_loss(
            video[rows, picks][:, None, None], prior[rows, picks][:, None, None]
        )  # one (1, h, w) frame per clip
        valid_fw, valid_bw = stable_validity(
            batch["flows_fw"],
            batch["flows_bw"],
            depth=prior.unsqueeze(2) if cfg.flow.edge_mask else None,
            tau=cfg.flow.cycle_tolerance,
            cycle=cfg.flow.cycle_mask,
        )
        pairs = (batch["flows_fw"], batch["flows_bw"], valid_fw, valid_bw)
        space = clip_normalize if cfg.loss.stable_space == "clip" else (lambda d: d)
        stable = stable_loss(space(video).unsqueeze(2), *pairs)
        loss = cfg.loss.w_reg * reg + cfg.loss.w_stable * stable
        loss.backward()
        metrics = {
            "loss/total": loss.detach(),
            "loss/reg": reg.detach(),
            "loss/stable": stable.detach(),
            "masks/coverage": coverage(valid_fw, valid_bw),
            "temporal/warp_error_video": stable.detach(),
        }
        if log:
            metrics["temporal/warp_error_prior"] = warp_error(space(prior).unsqueeze(2), *pairs)
        return metrics
