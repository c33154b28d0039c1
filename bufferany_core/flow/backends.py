"""Optical flow estimators behind one interface.

Every estimator maps two batches of frames, float sRGB in [0, 1] of shape (B, 3, H, W), to the
flow (B, 2, H, W) from `frames_a` to `frames_b`, in pixels, channel 0 = x (right), 1 = y (down):
pixel x of frame a shows what pixel x + flow(x) of frame b shows. Tensors stay on the device they
came on (DIS computes on the CPU and moves its answer back).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from bufferany_core.errors import BadArgumentsError, MissingWeightsError
from bufferany_core.models import weights as weight_registry
from bufferany_core.models.weights import RandomWeights, WeightSpec

FlowName = Literal["dis", "raft-small", "raft-large"]
FLOW_NAMES: tuple[str, ...] = ("dis", "raft-small", "raft-large")


class FlowEstimator(Protocol):
    name: str

    def estimate_flow(self, frames_a: torch.Tensor, frames_b: torch.Tensor) -> torch.Tensor: ...


def _check_pair(frames_a: torch.Tensor, frames_b: torch.Tensor) -> None:
    if frames_a.ndim != 4 or frames_a.shape[1] != 3:
        raise ValueError(f"frames_a must be (B, 3, H, W), got {tuple(frames_a.shape)}")
    if frames_a.shape != frames_b.shape:
        raise ValueError(
            f"frames_a {tuple(frames_a.shape)} and frames_b {tuple(frames_b.shape)} differ in shape"
        )


# --- OpenCV DIS ------------------------------------------------------------------------------------
_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


@dataclass
class DISFlow:
    """OpenCV's Dense Inverse Search (Kroeger et al. 2016) on 8-bit luma; needs no weights.

    `preset` picks OpenCV's speed/quality trade-off; "medium" keeps sub-pixel accuracy on textured
    plates at a few tens of milliseconds per HD pair.
    """

    preset: Literal["ultrafast", "fast", "medium"] = "medium"
    name: str = "dis"

    def __post_init__(self) -> None:
        if self.preset not in _DIS_PRESETS:
            raise BadArgumentsError(f"DIS preset {self.preset!r} is not one of {sorted(_DIS_PRESETS)}")

    def estimate_flow(self, frames_a: torch.Tensor, frames_b: torch.Tensor) -> torch.Tensor:
        import cv2

        _check_pair(frames_a, frames_b)
        luma_a, luma_b = _to_luma_u8(frames_a), _to_luma_u8(frames_b)  # (B, H, W) uint8
        # A fresh DIS object per pair: one object carries state from call to call, so a pair's flow
        # would depend on the pairs computed before it (and on how a clip is split into batches).
        flows = [
            cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset]).calc(a, b, None)  # type: ignore[attr-defined]
            for a, b in zip(luma_a, luma_b, strict=True)
        ]  # each (H, W, 2)
        out = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2)  # (B, 2, H, W)
        return out.to(device=frames_a.device, dtype=torch.float32)


def _to_luma_u8(frames: torch.Tensor) -> np.ndarray:
    # Rec.709 luma of display-referred values: DIS matches brightness patterns, colour adds nothing.
    # In numpy: DIS runs on the CPU anyway, and torch's small ops cost more than the flow itself on a
    # busy CPU (thread-pool hand-offs).
    rgb = np.clip(frames.detach().float().cpu().numpy(), 0.0, 1.0)
    luma = np.tensordot(np.array([0.2126, 0.7152, 0.0722], np.float32), rgb, axes=([0], [1]))  # (B, H, W)
    return (luma * 255.0 + 0.5).astype(np.uint8)


# --- RAFT (torchvision) ----------------------------------------------------------------------------
# torchvision's V2 checkpoints, mirrored on the Hugging Face hub (BSD-3-Clause, like torchvision).
RAFT_WEIGHTS = {
    "raft-large": weight_registry.register(
        WeightSpec(
            name="raft-large",
            repo_id="hr16/RAFT-v2",
            filename="raft_large_C_T_SKHT_V2-ff5fadd5.pth",
            licence="BSD-3-Clause",  # size and sha256: weights.PINNED
        )
    ),
    "raft-small": weight_registry.register(
        WeightSpec(
            name="raft-small",
            repo_id="hr16/RAFT-v2",
            filename="raft_small_C_T_V2-01064c6d.pth",
            licence="BSD-3-Clause",  # size and sha256: weights.PINNED
        )
    ),
}


class RAFTFlow:
    """torchvision's RAFT, built without weights and loaded from a local state dict.

    torchvision would download its weights from a URL when asked for pretrained weights; this class
    never asks, so nothing leaves the machine. Frames are padded (replicate) to multiples of 8, as
    RAFT's 1/8 feature grid needs, and to at least 128 pixels, as its 4-level correlation pyramid
    needs; the flow is cropped back.
    """

    def __init__(self, model: torch.nn.Module, *, name: str, num_flow_updates: int = 12):
        if num_flow_updates < 1:
            raise ValueError(f"num_flow_updates must be >= 1, got {num_flow_updates}")
        self.model = model.eval()
        self.name = name
        self.num_flow_updates = num_flow_updates

    @torch.no_grad()
    def estimate_flow(self, frames_a: torch.Tensor, frames_b: torch.Tensor) -> torch.Tensor:
        _check_pair(frames_a, frames_b)
        height, width = frames_a.shape[-2:]
        pad_h, pad_w = (
            max(_padded(height), _RAFT_MIN_SIZE) - height,
            max(_padded(width), _RAFT_MIN_SIZE) - width,
        )
        device = next(self.model.parameters()).device
        pair = torch.cat([frames_a, frames_b]).to(device=device, dtype=torch.float32) * 2.0 - 1.0  # [-1, 1]
        pair = F.pad(pair, (0, pad_w, 0, pad_h), mode="replicate")  # (2B, 3, H8, W8)
        image_a, image_b = pair.chunk(2)
        flow = self.model(image_a, image_b, num_flow_updates=self.num_flow_updates)[-1]  # (B, 2, H8, W8)
        return flow[:, :, :height, :width].to(frames_a.device)


_RAFT_MIN_SIZE = 128  # 16 feature cells at 1/8: the coarsest pyramid level keeps 2 cells


def _padded(size: int) -> int:
    return size + (-size) % 8


def build_raft(name: str, *, state_dict: dict | None = None) -> torch.nn.Module:
    """RAFT large or small with `state_dict` loaded strictly (None: torchvision's random init)."""
    from torchvision.models.optical_flow import raft_large, raft_small

    builders = {"raft-large": raft_large, "raft-small": raft_small}
    if name not in builders:
        raise BadArgumentsError(f"unknown RAFT model {name!r}; choose one of {sorted(builders)}")
    model = builders[name](weights=None, progress=False)
    if state_dict is not None:
        mismatch = weight_registry.state_dict_mismatch(model, state_dict)
        if mismatch is not None:
            raise MissingWeightsError(f"weights do not fit {name}: {mismatch}")
        model.load_state_dict(state_dict, strict=True)
    return model


def load_flow_estimator(
    name: str = "auto",
    *,
    weights: Path | RandomWeights | None = None,
    models_dir: Path | None = None,
    device: torch.device | str = "cpu",
    num_flow_updates: int = 12,
) -> FlowEstimator:
    """The estimator named `name` ("dis", "raft-small", "raft-large", or "auto").

    "auto" uses RAFT large when `weights` is given or its weights are found offline (models folder
    or Hugging Face cache), and DIS otherwise. A named RAFT whose weights are missing raises `MissingWeightsError`.
    """
    if name == "auto" and weights is not None:
        name = "raft-large"
    elif name == "auto":
        try:
            weight_registry.resolve(RAFT_WEIGHTS["raft-large"], models_dir=models_dir)
        except MissingWeightsError:
            return DISFlow()
        name = "raft-large"
    if name == "dis":
        return DISFlow()
    if name not in RAFT_WEIGHTS:
        raise BadArgumentsError(
            f"unknown flow backend {name!r}; choose one of {', '.join(FLOW_NAMES)} or auto"
        )
    if isinstance(weights, RandomWeights):
        skeleton = build_raft(name)
        state = weight_registry.deterministic_state_dict(skeleton, seed=weights.seed)
    else:
        path = weight_registry.resolve(RAFT_WEIGHTS[name], path=weights, models_dir=models_dir)
        state = weight_registry.load_state_dict_file(path)
    model = build_raft(name, state_dict=state).to(device)
    return RAFTFlow(model, name=name, num_flow_updates=num_flow_updates)


def adjacent_flows(
    frames: torch.Tensor, estimator: FlowEstimator, *, batch_size: int = 4
) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward and backward flows between consecutive frames of a clip (T, 3, H, W).

    Returns `flows_fw` (T-1, 2, H, W), frame k -> k+1 on frame k's grid, and `flows_bw`
    (T-1, 2, H, W), frame k+1 -> k on frame k+1's grid. Pairs go through the estimator
    `batch_size` at a time, forward and backward in the same batch.
    """
    if frames.ndim != 4 or frames.shape[1] != 3 or frames.shape[0] < 2:
        raise ValueError(f"frames must be (T >= 2, 3, H, W), got {tuple(frames.shape)}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    forward, backward = [], []
    for start in range(0, frames.shape[0] - 1, batch_size):
        stop = min(start + batch_size, frames.shape[0] - 1)
        a, b = frames[start:stop], frames[start + 1 : stop + 1]
        both = estimator.estimate_flow(torch.cat([a, b]), torch.cat([b, a]))  # (2n, 2, H, W)
        fw, bw = both.chunk(2)
        forward.append(fw)
        backward.append(bw)
    return torch.cat(forward), torch.cat(backward)
