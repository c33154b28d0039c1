"""Buffer Anytime's training losses, shared by training and evaluation.

Shapes: predictions are (B, T, C, H, W); flows and validity masks between consecutive frames are
computed beforehand (`bufferany_core.flow`) and passed in as (B, T-1, 2, H, W) and
(B, T-1, 1, H, W), forward (k -> k+1 on frame k's grid) and backward (k+1 -> k on frame k+1's grid).
"""

from __future__ import annotations

import torch

from bufferany_core.flow.warp import backward_warp

# Floor on the scale s of a normalised map: a constant map has s = 0 and would divide by zero.
_MIN_SCALE = 1e-6


def affine_invariant_normalize(depth: torch.Tensor) -> torch.Tensor:
    """Normalise each map (..., H, W) to (D - t) / s with t = median(D), s = mean |D - t| over its pixels.

    Maps that differ by a positive scale and any shift normalise to the same map.
    """
    if depth.ndim < 2:
        raise ValueError(f"depth must have at least (H, W) dimensions, got {tuple(depth.shape)}")
    flat = depth.flatten(-2)  # (..., H*W)
    shift = flat.median(dim=-1, keepdim=True).values
    scale = (flat - shift).abs().mean(dim=-1, keepdim=True).clamp_min(_MIN_SCALE)
    return ((flat - shift) / scale).view_as(depth)


def depth_regularization_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_reg for depth: mean squared difference of the affine-normalised maps, (B, T, 1, H, W) each.

    Each frame of each clip is normalised on its own (the paper uses one random frame, T = 1).
    """
    _check_video(prediction, "prediction")
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape"
        )
    return (affine_invariant_normalize(prediction) - affine_invariant_normalize(target)).square().mean()


def normal_latent_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """L_reg for normals: mean squared difference between predicted and image-model latents (any shape)."""
    if prediction.shape != target.shape:
        raise ValueError(
            f"prediction {tuple(prediction.shape)} and target {tuple(target.shape)} differ in shape"
        )
    return (prediction - target).square().mean()


def stable_loss(
    prediction: torch.Tensor,
    flows_fw: torch.Tensor,
    flows_bw: torch.Tensor,
    valid_fw: torch.Tensor,
    valid_bw: torch.Tensor,
    *,
    rotations: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_stable: L1 between each prediction and its flow-warped neighbour, both directions, averaged
    over valid pixels.

    For frames k, k+1: |P_k - warp(P_{k+1}, fw_k)| on frame k's pixels where `valid_fw` holds, and
    |P_{k+1} - warp(P_k, bw_k)| on frame k+1's pixels where `valid_bw` holds; the per-pixel L1 is
    averaged over channels. Pixels whose warp leaves the frame never count. Returns 0 (connected to
    the graph) when no pixel is valid.

    `rotations` (B, T-1, 3, 3), for camera-space normals (C = 3): the camera's turn R_k from frame k
    to k+1, undone before comparing (R_k P_k with warp(P_{k+1}), R_k^T P_{k+1} with warp(P_k)), so
    that the change a turning camera really makes is not counted as flicker. Taken as given (no
    gradient flows into it).
    """
    _check_video(prediction, "prediction")
    batch, frames, channels, height, width = prediction.shape
    pair_shape = (batch, frames - 1)
    for name, tensor, channels_expected in (
        ("flows_fw", flows_fw, 2),
        ("flows_bw", flows_bw, 2),
        ("valid_fw", valid_fw, 1),
        ("valid_bw", valid_bw, 1),
    ):
        if tuple(tensor.shape) != (*pair_shape, channels_expected, height, width):
            raise ValueError(
                f"{name} must be {(*pair_shape, channels_expected, height, width)}, got {tuple(tensor.shape)}"
            )
    if frames < 2:
        raise ValueError("stable_loss needs at least 2 frames")
    if rotations is not None and (channels != 3 or tuple(rotations.shape) != (*pair_shape, 3, 3)):
        raise ValueError(
            f"rotations must be {(*pair_shape, 3, 3)} for 3-channel predictions, got {tuple(rotations.shape)} "
            f"for {channels} channels"
        )
    current = prediction[:, :-1].flatten(0, 1)  # (B*(T-1), C, H, W)
    following = prediction[:, 1:].flatten(0, 1)
    warped_next, inside_fw = backward_warp(following, flows_fw.flatten(0, 1).to(prediction.dtype))
    warped_prev, inside_bw = backward_warp(current, flows_bw.flatten(0, 1).to(prediction.dtype))
    mask_fw = (valid_fw.flatten(0, 1).bool() & inside_fw).to(prediction.dtype)  # (B*(T-1), 1, H, W)
    mask_bw = (valid_bw.flatten(0, 1).bool() & inside_bw).to(prediction.dtype)
    if rotations is not None:
        turn = rotations.flatten(0, 1).detach().to(prediction.dtype)
        current = torch.einsum("nij,njhw->nihw", turn, current)
        following = torch.einsum("nji,njhw->nihw", turn, following)  # R^T: frame k+1 turned back to k
    error = (current - warped_next).abs().mean(1, keepdim=True) * mask_fw
    error = error.sum() + ((following - warped_prev).abs().mean(1, keepdim=True) * mask_bw).sum()
    count = mask_fw.sum() + mask_bw.sum()
    return error / count.clamp_min(1.0)


def _check_video(tensor: torch.Tensor, name: str) -> None:
    if tensor.ndim != 5:
        raise ValueError(f"{name} must be (B, T, C, H, W), got {tuple(tensor.shape)}")
