"""Training-free stabilisation of per-frame depth and normal passes (beyond the paper).

Whole-clip functions (`stabilize_depth`, `stabilize_normals`, `stabilize_clip`) hold the clip, its
flows and masks in memory: for T frames of H x W that is about T * H * W * 4 bytes * (C + 4 flow
channels + 2 masks + 2 * (C + 1) filter accumulators), e.g. 100 frames of 1920 x 1080 depth
~ 10 GB in float32, so the shot pipeline calls them per window. `StreamingStabilizer` keeps only
the previous frame's state (a constant ~ 12 * H * W * 4 bytes whatever the shot length) and is
causal: each frame is filtered with its past only, so it removes somewhat less flicker than the
two-sided whole-clip filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from bufferany_core.flow.anamorphic import square_frame_pairs
from bufferany_core.flow.backends import FlowEstimator
from bufferany_core.flow.masks import DEFAULT_CYCLE_TOLERANCE
from bufferany_core.flow.pairs import FramePairs, compute_frame_pairs
from bufferany_core.stabilize.affine import (
    MAD_TO_SIGMA,
    correspondence_samples,
    remove_trend,
    robust_affine_fit,
    solve_frame_affines,
)
from bufferany_core.stabilize.temporal import Accumulator, bidirectional_filter, step


@dataclass(frozen=True)
class StabilizeSettings:
    """Every knob of the stabiliser, with its default.

    decay: weight of history one frame older (0.8: about 4 frames each side carry most weight).
    range_factor: the temporal filter's Gaussian gate has sigma = range_factor * the clip's typical
        frame-to-frame difference at valid correspondences, so residual flicker passes and real
        changes (moving objects, wrong flow) are cut off.
    trend_frames: sigma (frames) of the local linear smoothing that separates flicker from slow
        changes in the per-frame scale/shift (`remove_trend`); None keeps the full correction (all
        frames tied to one scale, which drifts on dolly shots: inverse depth really changes there).
    cycle_tolerance: forward-backward check threshold in pixels (`bufferany_core.flow.masks`).
    align_samples: correspondences sampled per frame pair for the scale/shift fit.
    """

    decay: float = 0.8
    range_factor: float = 2.0
    trend_frames: float | None = 10.0
    cycle_tolerance: float = DEFAULT_CYCLE_TOLERANCE
    align_samples: int = 20_000
    align_iterations: int = 6

    def __post_init__(self) -> None:
        if not 0 <= self.decay < 1:
            raise ValueError(f"decay must be in [0, 1), got {self.decay}")
        if self.range_factor <= 0:
            raise ValueError(f"range_factor must be > 0, got {self.range_factor}")
        if self.trend_frames is not None and self.trend_frames <= 0:
            raise ValueError(f"trend_frames must be > 0 or None, got {self.trend_frames}")
        if self.cycle_tolerance < 0:
            raise ValueError(f"cycle_tolerance must be >= 0, got {self.cycle_tolerance}")
        if self.align_samples < 1 or self.align_iterations < 1:
            raise ValueError("align_samples and align_iterations must be >= 1")


@dataclass(frozen=True)
class StabilizedDepth:
    depth: torch.Tensor  # (T, 1, H, W)
    scale: torch.Tensor  # (T,) per-frame scale applied before filtering
    shift: torch.Tensor  # (T,)


def typical_difference(values: torch.Tensor, pairs: FramePairs, *, max_samples: int = 20_000) -> float:
    """Robust scale (1.4826 * median) of |v_k(x) - v_{k+1}(x + flow)| over valid correspondences of a
    clip (T, C, H, W), vector norm over channels; 0 when nothing corresponds."""
    generator = torch.Generator().manual_seed(0)
    per_pair = max(1, max_samples // max(1, len(pairs)))
    gaps = torch.zeros(0, dtype=torch.float64)
    for k in range(len(pairs)):
        u, v = correspondence_samples(values, pairs, k, max_samples=per_pair, generator=generator)
        gaps = torch.cat([gaps, torch.linalg.vector_norm(u - v, dim=1)])
    return float(MAD_TO_SIGMA * gaps.median()) if gaps.numel() else 0.0


def _range_sigma(values: torch.Tensor, pairs: FramePairs, settings: StabilizeSettings) -> float:
    spread = typical_difference(values, pairs, max_samples=settings.align_samples)
    # Without any valid correspondence the gate is irrelevant (nothing is carried): any positive value.
    return settings.range_factor * spread if spread > 0 else 1.0


def stabilize_depth(
    depth: torch.Tensor, pairs: FramePairs, *, settings: StabilizeSettings | None = None
) -> StabilizedDepth:
    """Stabilise a depth clip (T, 1, H, W): per-frame robust scale/shift along the flow, then the
    edge- and occlusion-aware bidirectional temporal filter. Values keep the input's convention."""
    settings = settings or StabilizeSettings()
    pairs.check_clip(depth, "depth")
    if depth.shape[1] != 1:
        raise ValueError(f"depth must be (T, 1, H, W), got {tuple(depth.shape)}")
    if len(pairs) == 0:
        ones = torch.ones(1, dtype=torch.float64)
        return StabilizedDepth(depth.clone(), ones, ones * 0)
    scale, shift = solve_frame_affines(
        depth, pairs, max_samples=settings.align_samples, iterations=settings.align_iterations
    )
    if settings.trend_frames is not None:
        scale, shift = remove_trend(scale, shift, sigma_frames=settings.trend_frames)
    view = (-1, 1, 1, 1)
    aligned = depth * scale.to(depth).view(view) + shift.to(depth).view(view)
    filtered = bidirectional_filter(
        aligned, pairs, decay=settings.decay, range_sigma=_range_sigma(aligned, pairs, settings)
    )
    return StabilizedDepth(filtered, scale, shift)


def stabilize_normals(
    normals: torch.Tensor, pairs: FramePairs, *, settings: StabilizeSettings | None = None
) -> torch.Tensor:
    """Stabilise unit normals (T, 3, H, W) with the bidirectional temporal filter, then renormalise.

    Camera-space normals turn with the camera; between neighbouring frames the turn is small and the
    range gate stops history that disagrees (fast camera rotation weakens the filtering, it does not
    blend wrong directions in)."""
    settings = settings or StabilizeSettings()
    pairs.check_clip(normals, "normals")
    if normals.shape[1] != 3:
        raise ValueError(f"normals must be (T, 3, H, W), got {tuple(normals.shape)}")
    if len(pairs) == 0:
        return normals.clone()
    filtered = bidirectional_filter(
        normals, pairs, decay=settings.decay, range_sigma=_range_sigma(normals, pairs, settings)
    )
    return torch.nn.functional.normalize(filtered, dim=1, eps=1e-12)


def stabilize_clip(
    plate: torch.Tensor,
    estimator: FlowEstimator,
    *,
    depth: torch.Tensor | None = None,
    normals: torch.Tensor | None = None,
    settings: StabilizeSettings | None = None,
    pixel_aspect: float = 1.0,
) -> tuple[StabilizedDepth | None, torch.Tensor | None]:
    """Flows from the plate (T, 3, H, W) in [0, 1], then `stabilize_depth` / `stabilize_normals`.
    The flow sees the plate with square pixels (`pixel_aspect`: the plate's, `flow.anamorphic`), as the
    render's stabiliser does.

    Depth edges are excluded from the correspondences when `depth` is given. Normals alone get no
    edge mask: Canny on noisy per-frame normals fires on the noise and would leave little to filter;
    the range gate already stops history at creases and silhouettes, where normals jump."""
    settings = settings or StabilizeSettings()
    if depth is None and normals is None:
        raise ValueError("nothing to stabilise: give depth, normals or both")
    pairs = square_frame_pairs(plate, estimator, pixel_aspect=pixel_aspect, depth=depth, tau=settings.cycle_tolerance)
    stable_depth = stabilize_depth(depth, pairs, settings=settings) if depth is not None else None
    stable_normals = stabilize_normals(normals, pairs, settings=settings) if normals is not None else None
    return stable_depth, stable_normals


class StreamingStabilizer:
    """Causal, constant-memory stabiliser: push frames in order, get each stabilised frame back.

    Depth frames are fitted (robust scale/shift) to the previous filtered frame along the flow and
    filtered forward in that chained scale; the output divides out an exponential moving average
    (over `trend_frames`) of the corrections, so slow changes of the input survive as in
    `remove_trend`. The range gate's sigma is re-estimated on every frame pair.
    """

    def __init__(self, estimator: FlowEstimator, *, settings: StabilizeSettings | None = None):
        self.estimator = estimator
        self.settings = settings or StabilizeSettings()
        self._plate: torch.Tensor | None = None
        self._guide: torch.Tensor | None = None
        self._depth: Accumulator | None = None
        self._normals: Accumulator | None = None
        self._trend = (1.0, 0.0)  # moving average of the depth corrections (scale, shift)

    def push(
        self, plate: torch.Tensor, *, depth: torch.Tensor | None = None, normals: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """plate (3, H, W) in [0, 1], depth (1, H, W) and/or normals (3, H, W) of the next frame."""
        if depth is None and normals is None:
            raise ValueError("nothing to stabilise: give depth, normals or both")
        guide = depth[None] if depth is not None else None
        if self._plate is None:
            self._plate, self._guide = plate[None], guide
            self._depth = Accumulator.start(depth[None]) if depth is not None else None
            self._normals = Accumulator.start(normals[None]) if normals is not None else None
            return (
                depth.clone() if depth is not None else None,
                normals.clone() if normals is not None else None,
            )
        if (depth is None) != (self._depth is None) or (normals is None) != (self._normals is None):
            raise ValueError("give the same passes (depth, normals) for every frame pushed")
        pairs = compute_frame_pairs(
            torch.cat([self._plate, plate[None]]),
            self.estimator,
            depth=torch.cat([self._guide, guide]) if self._guide is not None and guide is not None else None,
            tau=self.settings.cycle_tolerance,
        )
        self._plate, self._guide = plate[None], guide
        out_depth = out_normals = None
        if depth is not None and self._depth is not None:
            self._depth, out_depth = self._push_depth(self._depth, depth[None], pairs)
        if normals is not None and self._normals is not None:
            self._normals = self._filter(self._normals, normals[None], pairs)
            out_normals = torch.nn.functional.normalize(self._normals.estimate(), dim=1, eps=1e-12)[0]
        return out_depth, out_normals

    def _filter(self, previous: Accumulator, value: torch.Tensor, pairs: FramePairs) -> Accumulator:
        context = torch.cat([previous.estimate(), value])  # (2, C, H, W)
        return step(
            previous,
            value,
            pairs.flows_bw,
            pairs.valid_bw,
            decay=self.settings.decay,
            range_sigma=_range_sigma(context, pairs, self.settings),
        )

    def _push_depth(
        self, history: Accumulator, depth: torch.Tensor, pairs: FramePairs
    ) -> tuple[Accumulator, torch.Tensor]:
        generator = torch.Generator().manual_seed(0)
        chained = history.estimate()  # previous frame, filtered, in the chained scale
        u, v = correspondence_samples(
            torch.cat([chained, depth]),
            pairs,
            0,
            max_samples=self.settings.align_samples,
            generator=generator,
        )
        scale, shift = robust_affine_fit(v[:, 0], u[:, 0], iterations=self.settings.align_iterations)
        if not scale > 0:  # degenerate (flat) frame: keep it as it is
            scale, shift = 1.0, 0.0
        history = self._filter(history, depth * scale + shift, pairs)
        if self.settings.trend_frames is None:
            return history, history.estimate()[0]
        rate = 1.0 / self.settings.trend_frames
        trend_scale = (1 - rate) * self._trend[0] + rate * scale
        trend_shift = (1 - rate) * self._trend[1] + rate * shift
        self._trend = (trend_scale, trend_shift)
        return history, ((history.estimate() - trend_shift) / trend_scale)[0]
