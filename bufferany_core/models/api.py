"""What the shot pipeline needs from a video model, whatever its family (depth or normals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from bufferany_core.models.catalog import PassName
from bufferany_core.models.precision import Precision

__all__ = ["ModelInfo", "PassName", "PassPredictor"]


@dataclass(frozen=True)
class ModelInfo:
    """Provenance recorded in every output header."""

    pass_name: PassName
    model_id: str  # registry name, e.g. "buffer-anytime-depth-small"
    weights_sha256: str | None  # None for random weights
    untrained: bool  # True for `random[:SEED]` weights or temporal layers never trained
    default_window: int  # frames per window (the catalogue entry's schedule)
    default_overlap: int  # frames shared by consecutive windows


class PassPredictor(Protocol):
    """A loaded model ready for one window of frames.

    `predict` takes frames (T, 3, H, W), float32 display-referred sRGB in [0, 1], at the plate's
    resolution, on the predictor's device, and returns, at the same resolution:
      - depth: (T, 1, H, W) relative inverse depth (affine-invariant disparity, bigger = closer);
      - normals: (T, 3, H, W) unit camera-space normals in the project's axis convention
        (conventions.NORMAL_AXES).
    No gradient, no I/O, no windowing: the pipeline owns those.
    """

    info: ModelInfo
    device: torch.device
    precision: Precision  # fp32 | fp16 | bf16 (CUDA autocast)

    def predict(self, frames: torch.Tensor) -> torch.Tensor: ...
