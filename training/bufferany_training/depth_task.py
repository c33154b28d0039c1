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
from bufferany_core.models.depth import (
    BufferAnytimeConfig,
    BufferAnytimeDepth,
    get_entry,
    load_depth_predictor,
    load_temporal_depth,
    save_temporal_depth,
)
from bufferany_core.models.depth.preprocess import IMAGENET_MEAN, IMAGENET_STD
from bufferany_core.models.weights import parse_weights_arg
from bufferany_training.config import TrainConfig
from bufferany_training.stable import clip_normalize, coverage, stable_validity, warp_error


class DepthObjective(nn.Module):
    """What DistributedDataParallel wraps: frames (B, T, 3, h, w) sRGB in [0, 1] ->
    (video prediction, image-model prediction), each (B, T, h, w), sharing one ViT pass."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: BufferAnytimeDepth):
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 1, 3, 1, 1), persistent=False)

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_with_prior((frames - self.mean) / self.std)


def build_depth_model(config: TrainConfig) -> tuple[BufferAnytimeDepth, BufferAnytimeConfig]:
    """The video model with the prior's weights loaded (registry, path or random) and its temporal
    config; `model.train_head` decides whether the head trains."""
    entry = get_entry(config.model.name)
    if entry.family != "buffer-anytime":
        raise BadArgumentsError(f"model.name {config.model.name!r} is not a buffer-anytime depth model")
    loaded = load_depth_predictor(
        config.model.name,
        weights=parse_weights_arg(config.model.weights or None),
        models_dir=Path(config.model.models_dir) if config.model.models_dir else None,
    ).model
    if not isinstance(loaded, BufferAnytimeDepth):  # guaranteed by the family check above
        raise TypeError(f"{config.model.name} did not build a BufferAnytimeDepth")
    temporal = BufferAnytimeConfig.for_size(entry.size, train_head=config.model.train_head)
    if temporal.temporal.max_frames < config.data.frames:
        raise BadArgumentsError(
            f"data.frames {config.data.frames} exceeds the temporal blocks' {temporal.temporal.max_frames} frames"
        )
    model = BufferAnytimeDepth.from_config(temporal)
    model.load_prior_state_dict(loaded.prior.state_dict())
    model.temporal_blocks.load_state_dict(loaded.temporal_blocks.state_dict(), strict=True)
    return model, temporal


def regularization_frames(indices: torch.Tensor, frames: int, *, seed: int) -> list[int]:
    """The random frame L_reg looks at, for each sample of a batch: a function of (seed, sample)."""
    return [random.Random(f"{seed}:{int(i)}:reg").randrange(frames) for i in indices]


class DepthTask:
    name = "depth"

    def __init__(self, config: TrainConfig):
        self.config = config
        self.model, self.temporal_config = build_depth_model(config)
        self.objective = DepthObjective(self.model)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return self.model.trainable_parameters()

    def train_mode(self) -> None:
        self.model.train()
        self.model.prior.eval()  # frozen: no dropout or statistics of its own

    def save_weights(self, path: Path, *, extra: dict) -> None:
        save_temporal_depth(path, self.model, config=self.temporal_config, extra=extra)

    def load_weights(self, path: Path) -> None:
        _, state = load_temporal_depth(path)
        self.model.load_temporal_state_dict(state)

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
        stable = stable_loss(clip_normalize(video).unsqueeze(2), *pairs)
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
            metrics["temporal/warp_error_prior"] = warp_error(clip_normalize(prior).unsqueeze(2), *pairs)
        return metrics
