"""Long-range, flow-guided robust temporal filtering along pixel trajectories (numpy + OpenCV, CPU).

The recursive filter (`stabilize.temporal`) weighs history by 0.8 per frame (about 4 frames each
side) and gates it on the new value, so slowly drifting errors (correlated over many frames) and
pops (a region jumping for a frame or two, far from its history, so the gate keeps it) survive. This
module looks at each frame's trajectory explicitly instead:

1. Each adjacent frame pair's flows (forward and backward) and their validity (forward-backward
   cycle check, and a depth or normal edge band) are computed once (`PairCorrespondence`); a render
   keeps them by shot position, so overlapping stabiliser windows never recompute a flow.
2. For frame k, the flows are composed outwards (k -> k-1 -> k-2 ..., and forwards) up to `radius`
   frames; each neighbour's value is sampled where the trajectory of each pixel of frame k lands
   (one bilinear sample from the neighbour itself, not repeated resampling). The trajectory stops
   where a link is invalid (occlusion, edge, out of frame).
3. Per pixel, a weighted local linear fit in time over the trajectory's samples (Gaussian temporal
   weights, a ridge on the slope so that a one-sided trajectory at a shot's end does not extrapolate)
   gives frame k's value at its own time: a linear change along the trajectory (a dolly) is kept, a
   wandering error averages out over the whole support.
4. Outliers: each sample is compared with the median of its 5 nearest trajectory samples (the
   neighbours before and after it): a pop is an outlier against both neighbours, while a slow drift
   is not; and with the long fit (a wrong flow, a moving object the cycle check missed). Tukey
   weights on both residuals (scales from their median absolute values over the frame) drop them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# Tukey's biweight constant (95% efficiency on Gaussian residuals) and MAD -> sigma.
TUKEY_K = 4.685
MAD_TO_SIGMA = 1.4826
# An edge band (pixels at Manhattan distance < EDGE_DISTANCE from an edge) is not linked: like
# `flow.masks.depth_edge_mask`.
EDGE_DISTANCE = 3
# Normal edges: neighbouring normals (after a 1 px Gaussian blur, which keeps per-frame noise of a few
# degrees far below it) turning by more than this many degrees per pixel mark a crease or silhouette.
NORMAL_EDGE_DEGREES = 12.0


@dataclass(frozen=True)
class PairCorrespondence:
    """Frames k and k+1: flow k -> k+1 on k's grid (`fw`, (H, W, 2) float32, x first), flow k+1 -> k on
    k+1's grid (`bw`), and where each can be trusted (`valid_fw`, `valid_bw`, (H, W) bool)."""

    fw: np.ndarray
    bw: np.ndarray
    valid_fw: np.ndarray
    valid_bw: np.ndarray


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def sample(image: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Bilinear samples of `image` (H, W) or (H, W, C<=4) float32 at positions x, y (H, W) float32;
    0 outside (callers mask by `inside`)."""
    return cv2.remap(image, x, y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def inside(x: np.ndarray, y: np.ndarray, height: int, width: int) -> np.ndarray:
    return (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)


def edge_band(edges: np.ndarray) -> np.ndarray:
    """True where a pixel is FAR (Manhattan distance >= EDGE_DISTANCE) from an edge pixel of `edges`."""
    to_edge = cv2.distanceTransform(np.where(edges, 0, 255).astype(np.uint8), cv2.DIST_L1, 3)
    return to_edge >= EDGE_DISTANCE


def normal_edges(normals: np.ndarray) -> np.ndarray:
    """Creases and silhouettes of unit normals (H, W, 3): pixels whose normal differs from its right or
    lower neighbour's by more than NORMAL_EDGE_DEGREES (after a 1 px blur against per-frame noise)."""
    smooth = cv2.GaussianBlur(normals.astype(np.float32), (0, 0), 1.0)
    smooth /= np.maximum(np.linalg.norm(smooth, axis=2, keepdims=True), 1e-12)
    limit = np.cos(np.radians(NORMAL_EDGE_DEGREES))
    edges = np.zeros(normals.shape[:2], bool)
    right = (smooth[:, 1:] * smooth[:, :-1]).sum(-1) < limit
    down = (smooth[1:] * smooth[:-1]).sum(-1) < limit
    edges[:, 1:] |= right
    edges[:, :-1] |= right
    edges[1:] |= down
    edges[:-1] |= down
    return edges


def far_from_edges(depth: np.ndarray | None, normals: np.ndarray | None) -> np.ndarray | None:
    """Edge-band mask (H, W) of one frame: from the depth (Canny, as `flow.masks.depth_edge_mask`) when
    there is depth, else from the normals themselves (`normal_edges`); None when neither is given."""
    if depth is not None:
        from bufferany_core.flow.masks import CANNY_HIGH, CANNY_LOW, depth_to_u8

        edges = cv2.Canny(depth_to_u8(depth), CANNY_LOW, CANNY_HIGH, apertureSize=3, L2gradient=True) > 0
        return edge_band(edges)
    if normals is not None:
        return edge_band(normal_edges(normals))
    return None


def pair_correspondence(
    flow_fw: np.ndarray,
    flow_bw: np.ndarray,
    *,
    keep_a: np.ndarray | None,
    keep_b: np.ndarray | None,
    tau: float,
) -> PairCorrespondence:
    """Validity of a pair's flows (H, W, 2): the forward-backward cycle returns within `tau` px, inside
    the frame, and not in the edge band of either frame (`keep_a` on frame k, `keep_b` on frame k+1)."""
    height, width = flow_fw.shape[:2]
    xs, ys = _grid(height, width)

    def cycle(there: np.ndarray, back: np.ndarray) -> np.ndarray:
        x, y = xs + there[..., 0], ys + there[..., 1]
        returned = sample(back, x, y)
        error = np.hypot(there[..., 0] + returned[..., 0], there[..., 1] + returned[..., 1])
        return inside(x, y, height, width) & (error <= tau)

    valid_fw, valid_bw = cycle(flow_fw, flow_bw), cycle(flow_bw, flow_fw)
    if keep_a is not None and keep_b is not None:
        valid_fw &= keep_a
        valid_bw &= keep_b
    return PairCorrespondence(flow_fw, flow_bw, valid_fw, valid_bw)


@dataclass(frozen=True)
class Trajectories:
    """Where the pixels of frame k are on frames k + offsets[i] (x[i], y[i], (H, W) float32) and whether
    the trajectory still holds there (alive[i], (H, W) bool); offsets 0, -1, +1, -2, +2, ..."""

    offsets: np.ndarray
    x: list[np.ndarray]
    y: list[np.ndarray]
    alive: np.ndarray

    def sample(self, values: list[np.ndarray], k: int) -> np.ndarray:
        """Samples (n, H, W, C) of a clip (`values[j]` (H, W, C) float32) along the trajectories."""
        out = [values[k + int(o)] if o == 0 else sample(values[k + int(o)], x, y) for o, x, y in zip(self.offsets, self.x, self.y, strict=True)]
        return np.stack([o.reshape(*o.shape[:2], -1) for o in out])


def trajectories(pairs: list[PairCorrespondence], frames: int, k: int, radius: int) -> Trajectories:
    """Frame k's pixel trajectories through a clip of `frames` frames (`pairs[j]` links frames j and j+1),
    up to `radius` frames each side, flows composed link by link."""
    height, width = pairs[0].fw.shape[:2] if pairs else (0, 0)
    xs, ys = _grid(height, width)
    offsets, px, py, alive_list = [0], [xs], [ys], [np.ones((height, width), bool)]
    for direction in (-1, 1):
        x, y, alive = xs, ys, np.ones((height, width), bool)
        j = k
        while abs(j - k) < radius and 0 <= j + direction < frames and alive.any():
            link = pairs[j - 1] if direction < 0 else pairs[j]
            flow, ok = (link.bw, link.valid_bw) if direction < 0 else (link.fw, link.valid_fw)
            # the trajectory's position on frame j is (x, y): the link's flow and validity there
            step = sample(np.dstack([flow, ok.astype(np.float32)]), x, y)
            x, y = x + step[..., 0], y + step[..., 1]
            j += direction
            alive = alive & (step[..., 2] > 0.999) & inside(x, y, height, width)  # every bilinear neighbour valid
            offsets.append(j - k)
            px.append(x)
            py.append(y)
            alive_list.append(alive)
    order = np.argsort([abs(o) * 2 + (o > 0) for o in offsets], kind="stable")
    return Trajectories(
        np.asarray(offsets)[order], [px[i] for i in order], [py[i] for i in order], np.stack([alive_list[i] for i in order])
    )


@dataclass(frozen=True)
class TrajectorySettings:
    """radius: frames each side on a trajectory; sigma_frames: Gaussian temporal weight; slope_ridge:
    ridge on the local slope, as a fraction of the full two-sided support's sum of w t^2 (keeps a
    one-sided end from extrapolating); pop_frames: samples each side in the local median a pop is
    judged against; iterations: fits (the first weighted by the pop test only); outlier_k: Tukey constant, in robust sigmas, of both outlier tests."""

    radius: int = 12
    sigma_frames: float = 100.0
    slope_ridge: float = 1e6
    outlier_k: float = TUKEY_K
    iterations: int = 2


def _tukey(residual: np.ndarray, sigma: float, k: float) -> np.ndarray:
    return np.square(np.clip(1.0 - np.square(residual / (k * sigma)), 0.0, None))


def _robust_sigma(residual: np.ndarray, valid: np.ndarray, floor: float) -> float:
    picked = residual[valid]
    if picked.size == 0:
        return max(floor, 1e-12)
    stride = max(1, picked.size // 200_000)
    return max(float(MAD_TO_SIGMA * np.median(picked[::stride])), floor, 1e-12)


def _neighbour_median(samples: np.ndarray, valid: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """For each sample (n, P, C), the median (channel-wise) of the 4 samples 1 and 2 frames before and
    after it on the same trajectory; a missing or invalid neighbour counts as the sample itself (no
    evidence against it)."""
    position = {int(o): i for i, o in enumerate(offsets)}
    out = np.empty_like(samples)
    for i, o in enumerate(offsets):
        own = samples[i]
        near = []
        for d in (-2, -1, 1, 2):
            j = position.get(int(o) + d)
            near.append(own if j is None else np.where(valid[j][:, None], samples[j], own))
        a, b, c, d = near
        # sorting network for 4 values: the median is the mean of the middle two
        a, b = np.minimum(a, b), np.maximum(a, b)
        c, d = np.minimum(c, d), np.maximum(c, d)
        out[i] = 0.5 * (np.maximum(a, c) + np.minimum(b, d))
    return out


def robust_trajectory_fit(
    offsets: np.ndarray, samples: np.ndarray, valid: np.ndarray, settings: TrajectorySettings, *, unit: bool = False
) -> np.ndarray:
    """Frame 0's value (H, W, C) from its trajectory samples (n, H, W, C), valid (n, H, W), see the
    module's steps 3-4. `unit`: residuals are vector norms (normals); the result is not renormalised."""
    n, height, width, channels = samples.shape
    t = offsets.astype(np.float64)
    g = np.exp(-0.5 * np.square(t / settings.sigma_frames))
    full = np.arange(-settings.radius, settings.radius + 1, dtype=np.float64)
    ridge = max(settings.slope_ridge * float((np.exp(-0.5 * np.square(full / settings.sigma_frames)) * full**2).sum()), 1e-6)
    flat = samples.reshape(n, -1, channels)
    ok = valid.reshape(n, -1)
    # Pop test: each sample against the median of its near neighbours on the trajectory.
    near = _neighbour_median(flat, ok, offsets)
    pop_residual = np.sqrt(np.square(flat - near).sum(-1))
    has_near = pop_residual > 0
    floor = 1e-6 * float(np.abs(flat[ok]).mean()) if ok.any() else 1e-12
    pop_sigma = _robust_sigma(pop_residual, ok & has_near, floor)
    base = g[:, None] * ok * _tukey(pop_residual, pop_sigma, settings.outlier_k)
    # Frame 0's own sample always counts a little, so a pixel whose whole trajectory is cut keeps its value.
    base[0] = np.maximum(base[0], 1e-3)
    weights = base
    estimate = np.zeros((flat.shape[1], channels))
    for iteration in range(settings.iterations):
        s0 = weights.sum(0)
        s1 = (weights * t[:, None]).sum(0)
        s2 = (weights * t[:, None] ** 2).sum(0) + ridge
        det = s0 * s2 - s1 * s1
        y0 = np.einsum("np,npc->pc", weights, flat)
        y1 = np.einsum("np,n,npc->pc", weights, t, flat)
        intercept = (s2[:, None] * y0 - s1[:, None] * y1) / det[:, None]
        slope = (s0[:, None] * y1 - s1[:, None] * y0) / det[:, None]
        estimate = intercept
        if iteration == settings.iterations - 1:
            break
        fitted = intercept[None] + t[:, None, None] * slope[None]
        residual = np.sqrt(np.square(flat - fitted).sum(-1))
        sigma = _robust_sigma(residual, ok & (base > 0), floor)
        weights = base * _tukey(residual, sigma, settings.outlier_k)
        weights[0] = np.maximum(weights[0], 1e-3)
    return estimate.reshape(height, width, channels).astype(np.float32)


def filter_clips(
    clips: list[tuple[list[np.ndarray], bool]],
    pairs: list[PairCorrespondence],
    settings: TrajectorySettings,
) -> list[list[np.ndarray]]:
    """Every frame of each clip (`values[j]` (H, W, C) float32, `unit`: unit vectors, renormalised)
    filtered along the clip's trajectories, traced once per frame for all clips."""
    frames = len(clips[0][0])
    out: list[list[np.ndarray]] = [[] for _ in clips]
    for k in range(frames):
        paths = trajectories(pairs, frames, k, settings.radius)
        for (values, unit), result in zip(clips, out, strict=True):
            estimate = robust_trajectory_fit(paths.offsets, paths.sample(values, k), paths.alive, settings, unit=unit)
            if unit:
                estimate /= np.maximum(np.linalg.norm(estimate, axis=-1, keepdims=True), 1e-12)
            result.append(estimate)
    return out


# -- one stabiliser window: per-frame scale and shift, then the trajectory filter --------------------------
@dataclass(frozen=True)
class WindowSettings:
    """trend_frames: as `StabilizeSettings.trend_frames` (slow course of the per-frame scale and shift
    kept); align_samples: correspondences per pair for the scale/shift fit; trajectory: the filter."""

    trend_frames: float | None = 10.0
    align_samples: int = 4000
    align_iterations: int = 6
    min_correspondences: int = 64
    trajectory: TrajectorySettings = TrajectorySettings()


def pair_depth_samples(
    current: np.ndarray, following: np.ndarray, pair: PairCorrespondence, max_samples: int
) -> tuple[np.ndarray, np.ndarray]:
    """Depth on frame k (u) and at the corresponding point of frame k+1 (v), both directions pooled, at
    most `max_samples` taken at an even stride (deterministic)."""
    height, width = current.shape
    xs, ys = _grid(height, width)
    ahead = sample(following, xs + pair.fw[..., 0], ys + pair.fw[..., 1])
    behind = sample(current, xs + pair.bw[..., 0], ys + pair.bw[..., 1])
    u = np.concatenate([current[pair.valid_fw], behind[pair.valid_bw]])
    v = np.concatenate([ahead[pair.valid_fw], following[pair.valid_bw]])
    stride = max(1, -(-u.size // max_samples))
    return u[::stride].astype(np.float64), v[::stride].astype(np.float64)


def stabilize_window(
    depth: list[np.ndarray] | None,
    normals: list[np.ndarray] | None,
    pairs: list[PairCorrespondence],
    settings: WindowSettings | None = None,
) -> tuple[list[np.ndarray] | None, list[np.ndarray] | None]:
    """Stabilise a window's depth (each (H, W) float32) and/or unit normals (each (H, W, 3) float32),
    `pairs[j]` linking frames j and j+1: depth gets the per-frame robust scale and shift along the flow
    (slow course kept, `affine.remove_trend`), then both go through the trajectory filter."""
    import torch

    from bufferany_core.stabilize.affine import remove_trend, solve_affines_from_samples

    settings = settings or WindowSettings()
    out_depth = out_normals = None
    clips: list[tuple[list[np.ndarray], bool]] = []
    if depth is not None:
        samples = []
        for k, pair in enumerate(pairs):
            u, v = pair_depth_samples(depth[k], depth[k + 1], pair, settings.align_samples)
            if u.size >= settings.min_correspondences:
                samples.append((k, torch.from_numpy(u), torch.from_numpy(v)))
        scale, shift = solve_affines_from_samples(len(depth), samples, iterations=settings.align_iterations)
        if settings.trend_frames is not None and len(depth) > 1:
            scale, shift = remove_trend(scale, shift, sigma_frames=settings.trend_frames)
        aligned = [
            (d * float(a) + float(b)).astype(np.float32)[..., None]
            for d, a, b in zip(depth, scale.tolist(), shift.tolist(), strict=True)
        ]
        clips.append((aligned, False))
    if normals is not None:
        clips.append(([n.astype(np.float32) for n in normals], True))
    results = filter_clips(clips, pairs, settings.trajectory)
    if depth is not None:
        out_depth = [f[..., 0] for f in results.pop(0)]
    if normals is not None:
        out_normals = results.pop(0)
    return out_depth, out_normals
