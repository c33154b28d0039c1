"""The camera's turn between consecutive frames, estimated from predicted camera-space normals.

A static surface's camera-space normal changes between two frames exactly by the camera's rotation
(translation leaves normals alone), so the rotation that best maps frame k's normals onto frame
k+1's at the flow's correspondences is the camera's turn, and what remains after undoing it is the
change L_stable should call flicker. Label-free: the unlabeled corpus has no cameras, so the turn
comes from the normals and the flow alone.
"""

from __future__ import annotations

import torch

from bufferany_core.flow.warp import backward_warp

# A residual at the pair's median residual keeps half its weight in a refit, and three refits: on the
# miniature's held-out shots one refit at twice the median still let creases, wrong flows and moving
# objects pull the rendered normals' fit off the true turn (the truth's change along the flow 0.0506
# and 0.0551 with it, 0.0478 and 0.0517 with three, 0.0477 and 0.0509 with the true turn).
_CAUCHY_MEDIANS = 1.0
_REFITS = 3
# The pull towards "no turn", as a share of the pair's total weight: it only decides directions the
# normals do not (a single flat wall says nothing about the turn around its own normal).
_IDENTITY_RIDGE = 1e-3


def weighted_rotation(source: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The rotation R (N, 3, 3), det +1, minimising sum w |R a - b|^2 over each item's pixels:
    source a and target b (N, 3, H, W), weight w (N, 1, H, W) >= 0 (the weighted orthogonal
    Procrustes / Kabsch fit). Items without weight, and directions the vectors leave undetermined,
    get no turn."""
    if source.ndim != 4 or source.shape[1] != 3 or target.shape != source.shape:
        raise ValueError(
            f"source and target must be (N, 3, H, W) alike, got {tuple(source.shape)} and {tuple(target.shape)}"
        )
    if weight.shape != (source.shape[0], 1, *source.shape[2:]):
        raise ValueError(
            f"weight must be {(source.shape[0], 1, *source.shape[2:])}, got {tuple(weight.shape)}"
        )
    source, target, weight = source.double(), target.double(), weight.double()
    # Maximising sum w b.(R a) = trace(R H) with H = sum w a b^T; the ridge adds trace(R) * lambda.
    cross = torch.einsum("nihw,njhw->nij", source * weight, target)
    total = weight.flatten(1).sum(1)
    eye = torch.eye(3, dtype=cross.dtype, device=cross.device)
    cross = cross + (_IDENTITY_RIDGE * total.clamp_min(1.0))[:, None, None] * eye
    u, _, vh = torch.linalg.svd(cross)
    v = vh.transpose(-1, -2)
    sign = torch.linalg.det(v @ u.transpose(-1, -2)).sign()
    # Where the best orthogonal map is a reflection, flip the weakest axis: the nearest rotation.
    fix = torch.diag_embed(torch.stack([torch.ones_like(sign), torch.ones_like(sign), sign], dim=-1))
    rotation = v @ fix @ u.transpose(-1, -2)
    return torch.where((total > 0)[:, None, None], rotation, eye)


@torch.no_grad()
def pair_rotations(normals: torch.Tensor, flows_fw: torch.Tensor, valid_fw: torch.Tensor) -> torch.Tensor:
    """Rotations (B, T-1, 3, 3) with R_k n_k ~ n_{k+1} at corresponding points, for unit normals
    (B, T, 3, H, W), forward flows (B, T-1, 2, H, W) and their validity (B, T-1, 1, H, W).

    Per pair, a weighted Kabsch fit over the valid correspondences, refitted with Cauchy weights on
    its residuals so that wrong flows and moving objects do not tilt it; then the clip's turns are
    made smooth in time (`smooth_turns`). No gradient: the turn is taken as a fact about the
    frames, not something the model may move."""
    if normals.ndim != 5 or normals.shape[2] != 3:
        raise ValueError(f"normals must be (B, T, 3, H, W), got {tuple(normals.shape)}")
    batch, frames = normals.shape[:2]
    pair_shape = (batch, frames - 1, *normals.shape[3:])
    if flows_fw.shape != (*pair_shape[:2], 2, *pair_shape[2:]) or valid_fw.shape != (
        *pair_shape[:2],
        1,
        *pair_shape[2:],
    ):
        raise ValueError(
            f"flows_fw {tuple(flows_fw.shape)} and valid_fw {tuple(valid_fw.shape)} do not match normals {tuple(normals.shape)}"
        )
    current = normals[:, :-1].flatten(0, 1).float()
    warped, inside = backward_warp(normals[:, 1:].flatten(0, 1).float(), flows_fw.flatten(0, 1).float())
    weight = (valid_fw.flatten(0, 1).bool() & inside).float()
    rotation = weighted_rotation(current, warped, weight)
    for _ in range(_REFITS):
        residual = (torch.einsum("nij,njhw->nihw", rotation.float(), current) - warped).norm(
            dim=1, keepdim=True
        )
        typical = (
            residual.masked_fill(weight == 0, float("nan")).flatten(1).nanmedian(dim=1).values.nan_to_num(0.0)
        )
        scale = (_CAUCHY_MEDIANS * typical).clamp_min(1e-6)[:, None, None, None]
        rotation = weighted_rotation(current, warped, weight / (1.0 + (residual / scale).square()))
    return smooth_turns(rotation.unflatten(0, (batch, frames - 1))).float()


def smooth_turns(rotations: torch.Tensor) -> torch.Tensor:
    """Per clip (B, P, 3, 3) -> the rotations whose axis-angle vectors are the least-squares straight
    line over the P pairs (a constant for one or two pairs).

    A camera's turn changes smoothly from frame to frame; a prediction's flicker does not. Turns
    fitted to a flickering prediction carry its frame-to-frame wobble, which the loss would then
    excuse (or, fitted to another model's output, impose); the line keeps the camera's steady turn
    and its gradual change. On the miniature's held-out shots, turns fitted to the image prior's
    normals explain the rendered normals' change along the flow better on the line (8-frame clips:
    all 6 closer to the true turn's figure than the raw fits)."""
    if rotations.ndim != 4 or rotations.shape[-2:] != (3, 3):
        raise ValueError(f"rotations must be (B, P, 3, 3), got {tuple(rotations.shape)}")
    pairs = rotations.shape[1]
    vectors = _rotation_log(rotations.double())  # (B, P, 3)
    steps = torch.arange(pairs, dtype=vectors.dtype, device=vectors.device)
    design = torch.stack([torch.ones_like(steps), steps - steps.mean()], dim=-1)[
        :, : 1 + (pairs > 2)
    ]  # (P, 1|2)
    line = design @ torch.linalg.pinv(design) @ vectors  # projection onto the line, per clip and axis
    return _rotation_exp(line).to(rotations.dtype)


def _rotation_log(rotation: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) rotations -> axis * angle (..., 3); turns well below 180 degrees, as between frames."""
    cos = ((rotation.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0).clamp(-1.0, 1.0)
    angle = torch.arccos(cos)
    skew = torch.stack(
        [
            rotation[..., 2, 1] - rotation[..., 1, 2],
            rotation[..., 0, 2] - rotation[..., 2, 0],
            rotation[..., 1, 0] - rotation[..., 0, 1],
        ],
        dim=-1,
    )  # 2 sin(angle) * axis
    factor = torch.where(
        angle > 1e-8, angle / (2.0 * torch.sin(angle).clamp_min(1e-12)), torch.full_like(angle, 0.5)
    )
    return skew * factor[..., None]


def _rotation_exp(vector: torch.Tensor) -> torch.Tensor:
    """axis * angle (..., 3) -> rotations (..., 3, 3)."""
    x, y, z = vector.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack(
        [torch.stack([zero, -z, y], -1), torch.stack([z, zero, -x], -1), torch.stack([-y, x, zero], -1)], -2
    )
    return torch.linalg.matrix_exp(skew)
