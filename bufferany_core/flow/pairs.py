"""Flows and validity between consecutive frames of a clip, bundled for the stabiliser and training."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bufferany_core.flow.backends import FlowEstimator, adjacent_flows
from bufferany_core.flow.masks import DEFAULT_CYCLE_TOLERANCE, pair_validity


@dataclass(frozen=True)
class FramePairs:
    """Correspondences between frames k and k+1 of a T-frame clip (N = T - 1 pairs).

    flows_fw (N, 2, H, W): k -> k+1 on frame k's grid; flows_bw (N, 2, H, W): k+1 -> k on frame
    k+1's grid; valid_fw / valid_bw (N, 1, H, W) bool: where those correspondences can be trusted.
    """

    flows_fw: torch.Tensor
    flows_bw: torch.Tensor
    valid_fw: torch.Tensor
    valid_bw: torch.Tensor

    def __post_init__(self) -> None:
        n, _, h, w = self.flows_fw.shape
        expected = {
            "flows_fw": (n, 2, h, w),
            "flows_bw": (n, 2, h, w),
            "valid_fw": (n, 1, h, w),
            "valid_bw": (n, 1, h, w),
        }
        for name, shape in expected.items():
            if tuple(getattr(self, name).shape) != shape:
                raise ValueError(f"{name} must be {shape}, got {tuple(getattr(self, name).shape)}")

    def __len__(self) -> int:
        return self.flows_fw.shape[0]

    def check_clip(self, clip: torch.Tensor, name: str) -> None:
        """Raise ValueError unless `clip` (T, C, H, W) has one more frame than there are pairs, same size."""
        if clip.ndim != 4 or clip.shape[0] != len(self) + 1 or clip.shape[-2:] != self.flows_fw.shape[-2:]:
            raise ValueError(
                f"{name} must be ({len(self) + 1}, C, {self.flows_fw.shape[-2]}, {self.flows_fw.shape[-1]}) "
                f"for {len(self)} frame pairs, got {tuple(clip.shape)}"
            )


def compute_frame_pairs(
    frames: torch.Tensor,
    estimator: FlowEstimator,
    *,
    depth: torch.Tensor | None = None,
    tau: float = DEFAULT_CYCLE_TOLERANCE,
    batch_size: int = 4,
) -> FramePairs:
    """Flows of a clip (T, 3, H, W) in [0, 1] and their validity (cycle check, and depth edges when
    `depth` (T, 1, H, W) is given)."""
    flows_fw, flows_bw = adjacent_flows(frames, estimator, batch_size=batch_size)
    valid_fw, valid_bw = pair_validity(flows_fw, flows_bw, depth=depth, tau=tau)
    return FramePairs(flows_fw, flows_bw, valid_fw, valid_bw)
