"""Flow-guided recursive temporal filtering that stops at occlusions, depth edges and real changes.

Each frame is averaged with its own history carried along the flow: S_k = v_k + d * g_k * W(S_{k-1}),
N_k = 1 + d * g_k * W(N_{k-1}), estimate S_k / N_k, where W warps the previous frame's accumulators
onto frame k, d < 1 is the decay (history older by n frames weighs d^n), and g_k in [0, 1] is 0
where the correspondence is invalid (occluded, near a depth edge, out of frame) and falls off as a
Gaussian of the difference between the carried estimate and the new value (a moving object or a
wrong flow must not be smeared in). Running it forward and backward and merging gives a
symmetric, non-causal filter; the forward run alone is the streaming (causal) variant.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bufferany_core.flow.pairs import FramePairs
from bufferany_core.flow.warp import backward_warp


@dataclass(frozen=True)
class Accumulator:
    """Weighted sum (1, C, H, W) and total weight (1, 1, H, W) of one frame's filtered history."""

    total: torch.Tensor
    weight: torch.Tensor

    @classmethod
    def start(cls, value: torch.Tensor) -> Accumulator:
        return cls(value.clone(), torch.ones_like(value[:, :1]))

    def estimate(self) -> torch.Tensor:
        return self.total / self.weight


def step(
    previous: Accumulator,
    value: torch.Tensor,
    flow_to_previous: torch.Tensor,
    valid: torch.Tensor,
    *,
    decay: float,
    range_sigma: float,
) -> Accumulator:
    """Fold frame `value` (1, C, H, W) into the history `previous`, carried along `flow_to_previous`
    (1, 2, H, W, on this frame's grid) where `valid` (1, 1, H, W) holds."""
    carried = backward_warp(torch.cat([previous.total, previous.weight], dim=1), flow_to_previous)[0]
    total, weight = carried[:, :-1], carried[:, -1:]
    estimate = total / weight.clamp_min(1e-12)
    difference = torch.linalg.vector_norm(estimate - value, dim=1, keepdim=True)  # (1, 1, H, W)
    gate = torch.exp(-0.5 * (difference / range_sigma).square()) * valid * (weight > 0)
    return Accumulator(value + decay * gate * total, 1.0 + decay * gate * weight)


def filter_pass(
    values: torch.Tensor,
    flows_to_previous: torch.Tensor,
    valid: torch.Tensor,
    *,
    decay: float,
    range_sigma: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `step` over a clip (T, C, H, W) in order; flows_to_previous[k-1] and valid[k-1] link frame
    k to frame k-1. Returns the accumulators (T, C, H, W) and (T, 1, H, W)."""
    accumulator = Accumulator.start(values[:1])
    totals, weights = [accumulator.total], [accumulator.weight]
    for k in range(1, values.shape[0]):
        accumulator = step(
            accumulator,
            values[k : k + 1],
            flows_to_previous[k - 1 : k],
            valid[k - 1 : k],
            decay=decay,
            range_sigma=range_sigma,
        )
        totals.append(accumulator.total)
        weights.append(accumulator.weight)
    return torch.cat(totals), torch.cat(weights)


def bidirectional_filter(
    values: torch.Tensor, pairs: FramePairs, *, decay: float, range_sigma: float
) -> torch.Tensor:
    """Forward and backward `filter_pass` over a clip (T, C, H, W), merged: (S_f + S_b - v) / (N_f + N_b - 1)
    counts frame k itself once."""
    if not 0 <= decay < 1:
        raise ValueError(f"decay must be in [0, 1), got {decay}")
    if range_sigma <= 0:
        raise ValueError(f"range_sigma must be > 0, got {range_sigma}")
    pairs.check_clip(values, "values")
    total_f, weight_f = filter_pass(
        values, pairs.flows_bw, pairs.valid_bw, decay=decay, range_sigma=range_sigma
    )
    total_b, weight_b = filter_pass(
        values.flip(0), pairs.flows_fw.flip(0), pairs.valid_fw.flip(0), decay=decay, range_sigma=range_sigma
    )
    return (total_f + total_b.flip(0) - values) / (weight_f + weight_b.flip(0) - 1.0)
