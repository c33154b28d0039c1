"""Normal fine-tuning: temporal blocks in the frozen Marigold-E2E-FT UNet.

loss = w_reg * L2(video latents, image-model latents) + w_stable * L_stable(decoded normals)

Decoding T frames through the VAE with a graph would hold the decoder's activations for every
frame at once. `deferred_decode_backward` instead decodes in chunks: it first decodes every chunk
without a graph to get the loss and its gradient with respect to the decoded frames, then
re-decodes one chunk at a time with a graph and back-propagates that chunk's share of the gradient
to the latents, and finally runs one backward through the UNet. The gradients are those of full
back-propagation (tests/test_training_normal.py checks it); the cost is one extra decoder forward.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from bufferany_core.errors import BadArgumentsError
from bufferany_core.losses import normal_latent_loss, stable_loss
from bufferany_core.models.normal import BufferAnytimeNormals, load_normal_predictor
from bufferany_core.models.weights import parse_weights_arg
from bufferany_training.camera_turn import pair_rotations
from bufferany_training.config import TrainConfig
from bufferany_training.stable import coverage, stable_validity, warp_error
from bufferany_training.task import TemporalWeightsTask


class NormalObjective(nn.Module):
    """What DistributedDataParallel wraps: image latents (B, T, 4, h, w) -> video latents."""

    def __init__(self, model: BufferAnytimeNormals):
        super().__init__()
        self.model = model

    def forward(self, rgb_latents: torch.Tensor) -> torch.Tensor:
        return self.model.predict_latent(rgb_latents)


def deferred_decode_backward(
    latents: torch.Tensor,
    decode: Callable[[torch.Tensor], torch.Tensor],
    frame_loss: Callable[[torch.Tensor], torch.Tensor],
    *,
    chunk: int,
    frame_weight: float = 1.0,
    latent_loss: torch.Tensor | None = None,
) -> torch.Tensor:
    """Back-propagate `frame_weight * frame_loss(decoded frames) + latent_loss` into the graph of `latents`
    (B, T, C, h, w), decoding at most `chunk` frames with a graph at a time; returns the frame loss.

    `decode` maps (N, C, h, w) latents to (N, ...) frames and must be deterministic. `latent_loss`
    (a scalar on the same graph) joins the final backward, so the graph upstream of `latents` is
    traversed exactly once (as DistributedDataParallel requires)."""
    if latents.ndim != 5:
        raise ValueError(f"expected latents (B, T, C, h, w), got {tuple(latents.shape)}")
    if chunk < 1:
        raise ValueError(f"decode chunk must be >= 1, got {chunk}")
    b, t = latents.shape[:2]
    leaf = latents.detach().flatten(0, 1).requires_grad_(True)  # (B*T, C, h, w)
    with torch.no_grad():
        decoded = torch.cat([decode(piece) for piece in leaf.split(chunk)])
    decoded = decoded.unflatten(0, (b, t)).requires_grad_(True)
    with torch.enable_grad():
        loss = frame_loss(decoded)
    (grad_frames,) = torch.autograd.grad(loss, decoded)
    grad_frames = grad_frames.flatten(0, 1) * frame_weight
    for start in range(0, b * t, chunk):
        piece = decode(leaf[start : start + chunk])
        piece.backward(grad_frames[start : start + chunk])  # accumulates into leaf.grad
    if leaf.grad is None:
        raise ValueError("decode does not depend on its input latents")
    grad_latents = leaf.grad.unflatten(0, (b, t))
    if latent_loss is None:
        latents.backward(grad_latents)
    else:
        torch.autograd.backward([latent_loss, latents], [torch.ones_like(latent_loss), grad_latents])
    return loss.detach()


class NormalTask(TemporalWeightsTask[BufferAnytimeNormals]):
    name = "normal"

    def __init__(self, config: TrainConfig):
        self.config = config
        predictor = load_normal_predictor(
            config.model.name,
            weights=parse_weights_arg(config.model.weights or None),
            models_dir=Path(config.model.models_dir) if config.model.models_dir else None,
        )
        if not isinstance(predictor.model, BufferAnytimeNormals):
            raise BadArgumentsError(f"model.name {config.model.name!r} is not a normal video model")
        self.model = predictor.model
        self.prior_sha256 = predictor.info.weights_sha256  # no temporal weights loaded: the prior's alone
        if self.model.max_frames < config.data.frames:
            raise BadArgumentsError(
                f"data.frames {config.data.frames} exceeds the temporal blocks' {self.model.max_frames} frames"
            )
        self.objective = NormalObjective(self.model)

    def trainable_parameters(self) -> list[nn.Parameter]:
        params = self.model.trainable_parameters()
        for p in params:
            p.requires_grad_(True)
        return params

    def train_mode(self) -> None:
        self.model.eval()  # the frozen UNet and VAE keep inference behaviour
        self.model.temporal.train()

    def step(
        self, module: nn.Module, batch: dict[str, torch.Tensor], *, amp, log: bool
    ) -> dict[str, torch.Tensor]:
        """One forward and backward on `batch` (frames, flows, index); returns detached metrics."""
        cfg = self.config
        images = self.model.normalize(batch["frames"])  # (B, T, 3, h, w) in [-1, 1]
        b, t = images.shape[:2]
        chunk = cfg.run.decode_chunk
        with torch.no_grad(), amp():
            flat = images.flatten(0, 1)
            rgb_latents = torch.cat([self.model.encode(piece) for piece in flat.split(chunk)])
            target = torch.cat([self.model.image_latents(piece) for piece in rgb_latents.split(chunk)])
        rgb_latents, target = rgb_latents.unflatten(0, (b, t)).float(), target.unflatten(0, (b, t)).float()
        with amp():
            latents = module(rgb_latents).float()  # (B, T, 4, h/8, w/8)
        reg = normal_latent_loss(latents, target)
        valid_fw, valid_bw = stable_validity(
            batch["flows_fw"], batch["flows_bw"], depth=None, tau=cfg.flow.cycle_tolerance, cycle=cfg.flow.cycle_mask
        )
        pairs = (batch["flows_fw"], batch["flows_bw"], valid_fw, valid_bw)

        def decode(piece: torch.Tensor) -> torch.Tensor:
            with amp():
                return self.model.decode(piece).float()

        prior_normals = None
        if log or cfg.loss.stable_rotation == "prior":  # a full decode: only when needed
            with torch.no_grad():
                flat = torch.cat([decode(piece) for piece in target.flatten(0, 1).split(chunk)])
            prior_normals = flat.unflatten(0, (b, t))

        def frame_loss(normals: torch.Tensor) -> torch.Tensor:
            source = {"video": normals.detach(), "prior": prior_normals}.get(cfg.loss.stable_rotation)
            turns = None if source is None else pair_rotations(source, batch["flows_fw"], valid_fw)
            return stable_loss(normals, *pairs, rotations=turns)

        stable = deferred_decode_backward(
            latents,
            decode,
            frame_loss,
            chunk=chunk,
            frame_weight=cfg.loss.w_stable,
            latent_loss=cfg.loss.w_reg * reg,
        )
        metrics = {
            "loss/total": (cfg.loss.w_reg * reg + cfg.loss.w_stable * stable).detach(),
            "loss/reg": reg.detach(),
            "loss/stable": stable,
            "masks/coverage": coverage(valid_fw, valid_bw),
            "temporal/warp_error_video": stable,
        }
        if log and prior_normals is not None:
            metrics["temporal/warp_error_prior"] = warp_error(prior_normals, *pairs)
        return metrics
