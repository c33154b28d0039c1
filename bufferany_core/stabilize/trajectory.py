"""Long-range, flow-guided robust temporal filtering along pixel trajectories (numpy + OpenCV, CPU).

The recursive filter (`stabilize.temporal`) weighs history by 0.8 per frame (about 4 frames each
side) and gates it on the new value, so slowly drifting errors (correlated over many frames) and
pops (a region jumping for a frame or two, far from its history, so the gate keeps it) survive. This
module looks at each frame's trajectory explicitly instead:

1. Each adjacent frame pair's flows (forward and backward) and their validity (forward-backward
   cycle check, and a depth or normal edge band) are computed once (`PairCorrespondence`); a render
   keeps them by shot position while a frame still to filter needs them.
2. For frame k, the flows are composed outwards (k -> k-1 -> k-2 ..., and forwards) up to `radius`
   frames, within the shot (a sliding support: each frame is traced once, whatever windows the depth
   alignment uses); each neighbour's value is sampled where the trajectory of each pixel of frame k
   lands (one bilinear sample from the neighbour itself, not repeated resampling). The trajectory
   stops where a link is invalid (occlusion, edge, out of frame).
3. Per pixel, a robust mean of the trajectory's samples: a wandering error averages out over the
   whole support; a steady change along the trajectory (a dolly) is symmetric about frame k and
   kept, except within `radius` of the shot's ends.
4. Outliers: each sample is compared with the median of the 4 samples 1-2 frames before and after it
   on the trajectory: a pop is an outlier against both neighbours, while a slow drift is not; and with
   the mean (a wrong flow, a moving object the cycle check missed). Tukey weights on both residuals
   (scales from their median absolute values over the frame) drop them. Steps 3-4 are
   `stabilize.robust_fit`, compiled per pixel with numba.
5. A pixel whose trajectory is cut short of what the shot allows (the edge band, occlusions) takes, in
   proportion, its neighbours' correction instead of its own (`fill_short_trajectories`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property

import cv2
import numba
import numpy as np

from bufferany_core.stabilize.affine import MAD_TO_SIGMA, TUKEY_K
from bufferany_core.stabilize.robust_fit import robust_trajectory_fit

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

    @cached_property
    def forward(self) -> np.ndarray:
        """(H, W, 3): the forward flow and its validity as 0/1, sampled together along a trajectory."""
        return np.dstack([self.fw, self.valid_fw.astype(np.float32)])

    @cached_property
    def backward(self) -> np.ndarray:
        return np.dstack([self.bw, self.valid_bw.astype(np.float32)])


def _grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    return xs, ys


def sample(image: np.ndarray, x: np.ndarray, y: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Bilinear samples of `image` (H, W) or (H, W, C<=4) float32 at positions x, y (H, W) float32;
    0 outside (callers mask by `inside`); written into `out` when given."""
    return cv2.remap(image, x, y, cv2.INTER_LINEAR, dst=out, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


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


@dataclass(frozen=True)
class Trajectories:
    """Where the pixels of frame k are on frames k + offsets[i] (x[i], y[i], (H, W) float32) and whether
    the trajectory still holds there (alive[i], (H, W) bool); offsets ascending and contiguous (-a..b),
    frame k's own at `own`."""

    offsets: np.ndarray
    x: list[np.ndarray]
    y: list[np.ndarray]
    alive: np.ndarray

    @property
    def own(self) -> int:
        return int(np.flatnonzero(self.offsets == 0)[0])

    def sample(
        self, values: Mapping[int, np.ndarray], k: int, reach: Sequence[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Samples (n, C, H, W) of a clip (`values[j]` (C, H, W) float32, channels first, by position) along
        the trajectories, one bilinear sample per neighbour frame, and their every other pixel of every
        other row (n, C, ceil(H / 2), ceil(W / 2)), what the robust fit's outlier tests read. `reach[c]`:
        the farthest offset channel c is read at (its pass's radius); its planes beyond are left unset."""
        if values[k].dtype != np.float32:  # remap writes into the buffer only when the types agree
            raise ValueError(f"trajectory samples need float32 frames, got {values[k].dtype}")
        channels, height, width = values[k].shape
        # channels first, every plane sampled straight into its place (remap of one channel at a time is
        # faster than of all four and a transposing copy, and gives the same numbers): every later step
        # runs over whole planes
        out = np.empty((len(self.offsets), channels, height, width), np.float32)
        coarse = np.empty((len(self.offsets), channels, (height + 1) // 2, (width + 1) // 2), np.float32)
        for i, (o, x, y) in enumerate(zip(self.offsets, self.x, self.y, strict=True)):
            if o == 0:
                out[i] = values[k]
            else:
                for c, plane in enumerate(values[k + int(o)]):
                    if reach is None or abs(o) <= reach[c]:
                        sample(plane, x, y, out=out[i, c])
            coarse[i] = out[i, :, ::2, ::2]
        return out, coarse


@numba.njit(cache=True, nogil=True, parallel=True)  # rows on numba's threads: the same numbers whatever their number
def _advance(step, x, y, alive, to_x, to_y, to_alive):  # pragma: no cover - compiled
    """One link along the trajectories: positions (x, y) (H, W) float32 moved by `step` (H, W, 3), the
    link's flow and validity sampled there, into (to_x, to_y); a trajectory stays alive (`to_alive`)
    while every bilinear neighbour of its link was valid and it is inside the frame. Returns how many
    are alive. One pass, the float32 operations of x + flow and of the comparisons in numpy."""
    height, width = x.shape
    right, bottom, whole = np.float32(width - 1), np.float32(height - 1), np.float32(0.999)
    alive_count = 0
    for r in numba.prange(height):
        for c in range(width):
            nx, ny = x[r, c] + step[r, c, 0], y[r, c] + step[r, c, 1]
            to_x[r, c], to_y[r, c] = nx, ny
            ok = alive[r, c] and step[r, c, 2] > whole and nx >= 0 and nx <= right and ny >= 0 and ny <= bottom
            to_alive[r, c] = ok
            alive_count += ok
    return alive_count


def trajectories(pairs: Mapping[int, PairCorrespondence], frames: int, k: int, radius: int) -> Trajectories:
    """Frame k's pixel trajectories through a shot of `frames` frames (`pairs[j]` links frames j and
    j+1, by position), up to `radius` frames each side within the shot, flows composed link by link."""
    height, width = next(iter(pairs.values())).fw.shape[:2] if pairs else (0, 0)
    xs, ys = _grid(height, width)
    alive = np.zeros((2 * radius + 1, height, width), bool)  # by offset + radius; the used run is sliced out
    alive[radius] = True
    positions: dict[int, tuple[np.ndarray, np.ndarray]] = {0: (xs, ys)}
    reach = {}
    for direction in (-1, 1):
        j, living = k, height * width
        while abs(j - k) < radius and 0 <= j + direction < frames and living > 0:
            link = pairs[j - 1] if direction < 0 else pairs[j]
            x, y = positions[j - k]
            # the trajectory's position on frame j is (x, y): the link's flow and validity there
            step = sample(link.backward if direction < 0 else link.forward, x, y)
            to = (np.empty_like(x), np.empty_like(y))
            living = _advance(step, x, y, alive[radius + j - k], *to, alive[radius + j + direction - k])
            j += direction
            positions[j - k] = to
        reach[direction] = j - k
    offsets = np.arange(reach[-1], reach[1] + 1)
    return Trajectories(
        offsets, [positions[o][0] for o in offsets], [positions[o][1] for o in offsets],
        alive[radius + reach[-1] : radius + reach[1] + 1],
    )


@dataclass(frozen=True)
class TrajectorySettings:
    """radius: frames each side on a trajectory (a frame's support is the shot's frames within it);
    normal_radius: the same for unit-vector passes (normals): camera-space normals turn with the camera
    and over a longer support the turn is less of a line (+-20 instead of +-16 raised the rendered
    shots' mean normal angle error by 0.2-0.5 degrees, while it took depth's AbsRel from 0.52x to 0.50x);
    slope_ridge: ridge on the local slope, as a fraction of a full two-sided support's sum of t^2 (a
    one-sided support at a shot's end follows a steady change without extrapolating noise); outlier_k: Tukey constant, in robust sigmas, of both outlier tests; iterations: robust means (the
    first weighted by the pop test only); fill_sigma: pixels, the Gaussian over which a pixel with a
    short trajectory takes its neighbours' correction (`fill_short_trajectories`)."""

    radius: int = 20
    normal_radius: int = 16
    slope_ridge: float = 0.3
    outlier_k: float = TUKEY_K
    iterations: int = 2
    fill_sigma: float = 8.0

    def __post_init__(self) -> None:
        if min(self.radius, self.normal_radius) < 1 or self.iterations < 1 or self.fill_sigma <= 0 or self.outlier_k <= 0:
            raise ValueError(f"trajectory settings need radius, iterations >= 1 and positive fill_sigma, outlier_k: {self}")

    @property
    def reach(self) -> int:
        """Frames each side any pass's support reaches."""
        return max(self.radius, self.normal_radius)

    def pass_radius(self, unit: bool) -> int:
        return self.normal_radius if unit else self.radius

    def ridge(self, radius: int) -> float:
        """The slope's ridge in the fit's units: `slope_ridge` x a full two-sided support's sum of t^2."""
        offsets = np.arange(-radius, radius + 1, dtype=np.float64)
        return self.slope_ridge * float((offsets**2).sum())


def fill_short_trajectories(
    own: np.ndarray, estimate: np.ndarray, support: np.ndarray, possible: int, settings: TrajectorySettings
) -> np.ndarray:
    """A pixel whose trajectory is cut short (edges, occlusions: `support` other frames of the `possible`
    ones, the shot's frames within the radius) has little to average and keeps most of its own flicker.
    Its estimate is blended, by how short the trajectory is (confidence = support / possible), with its
    own value corrected by its neighbours' corrections (estimate - own)
    (a Gaussian of `fill_sigma` px weighted by their support): image-model flicker is spatially smooth
    (a local drift, a region popping), so the neighbours' correction is the better guess for it. Its
    own per-frame noise, which nothing averaged, is taken down by an edge-preserving (bilateral) filter
    of the frame: the range kernel (EDGE_NOISE_SIGMAS x the frame's noise) keeps depth steps and creases,
    which are far larger than the noise.

    Confidence is relative to what the shot can give at this frame, not to a full two-sided support:
    at a shot's ends and in short shots every trajectory is short, and measured against 2 x radius
    every pixel there went through the bilateral and lost fine detail (texture, the creases of normals)
    although its trajectory held over all the frames there are (`possible` >= 1)."""
    confidence = np.minimum(1.0, support.astype(np.float32) / possible)[..., None]
    correction = estimate - own
    weighted = cv2.GaussianBlur(correction * confidence, (0, 0), settings.fill_sigma)
    total = cv2.GaussianBlur(confidence, (0, 0), settings.fill_sigma)
    neighbours = weighted.reshape(correction.shape) / np.maximum(total, 1e-6)[..., None]
    return confidence * estimate + (1.0 - confidence) * (_denoise(own) + neighbours)


EDGE_NOISE_SIGMAS = 3.5  # bilateral range kernel, in robust sigmas of the frame's pixel noise
EDGE_DENOISE_PX = 2.5  # bilateral spatial sigma, pixels


def _denoise(frame: np.ndarray) -> np.ndarray:
    """Edge-preserving denoise of one frame (H, W, C) float32: a bilateral filter (spatial sigma
    EDGE_DENOISE_PX) whose range sigma is EDGE_NOISE_SIGMAS x the pixel noise (MAD of the frame minus
    its 1 px blur)."""
    detail = np.abs(frame - cv2.GaussianBlur(frame, (0, 0), 1.0).reshape(frame.shape))
    noise = MAD_TO_SIGMA * float(np.median(detail[:: max(1, detail.shape[0] // 64), :: max(1, detail.shape[1] // 64)]))
    if noise <= 0:
        return frame
    smooth = cv2.bilateralFilter(frame, 2 * int(np.ceil(2 * EDGE_DENOISE_PX)) + 1, EDGE_NOISE_SIGMAS * noise, EDGE_DENOISE_PX)
    return smooth.reshape(frame.shape)


def filter_frame(
    values: Mapping[int, np.ndarray],
    pairs: Mapping[int, PairCorrespondence],
    frames: int,
    k: int,
    groups: list[tuple[slice, bool]],
    settings: TrajectorySettings,
) -> np.ndarray:
    """Frame k (C, H, W) of a shot of `frames` frames (`values[j]` (C<=4, H, W) float32, channels first,
    by position, the frames within `settings.reach` of k present) filtered along its trajectories;
    `groups`: the channels fitted together (a pass) and whether they are unit vectors (renormalised;
    their support is `settings.normal_radius`, the others' `settings.radius`). One trace, one sample
    per neighbour frame for all passes. A one-frame shot has nothing to filter:
    it comes back as it is."""
    if frames == 1:
        return values[k].copy()
    reach = [0] * values[k].shape[0]
    for channels, unit in groups:
        reach[channels] = [settings.pass_radius(unit)] * len(reach[channels])
    paths = trajectories(pairs, frames, k, max(reach))
    samples, coarse = paths.sample(values, k, reach)
    out = np.empty_like(values[k])
    for channels, unit in groups:
        radius = settings.pass_radius(unit)
        reached = np.flatnonzero(np.abs(paths.offsets) <= radius)
        near = slice(int(reached[0]), int(reached[-1]) + 1)  # this pass's support within the trace
        alive = paths.alive[near]
        support = alive.sum(0) - 1
        possible = min(radius, k) + min(radius, frames - 1 - k)  # the shot's frames in reach
        fitted = robust_trajectory_fit(
            samples[near], coarse[near], channels, alive, paths.own - near.start,
            ridge=settings.ridge(radius), outlier_k=settings.outlier_k, iterations=settings.iterations,
        )
        # the fill's blurs and bilateral are OpenCV's: (H, W, C)
        own = np.ascontiguousarray(values[k][channels].transpose(1, 2, 0))
        estimate = fill_short_trajectories(own, np.ascontiguousarray(fitted.transpose(1, 2, 0)), support, possible, settings)
        if unit:
            estimate /= np.maximum(np.linalg.norm(estimate, axis=-1, keepdims=True), 1e-12)
        out[channels] = estimate.transpose(2, 0, 1)
    return out


def filter_clips(
    clips: list[tuple[list[np.ndarray], bool]],
    pairs: list[PairCorrespondence],
    settings: TrajectorySettings,
) -> list[list[np.ndarray]]:
    """Every frame of each clip (`values[j]` (H, W, C) float32, `unit`: unit vectors, renormalised)
    filtered along the clip's trajectories (`filter_frame`), the clips stacked so one trace serves all."""
    frames = len(clips[0][0])
    widths = [values[0].shape[-1] for values, _ in clips]
    bounds = np.cumsum([0, *widths])
    groups = [(slice(int(a), int(b)), unit) for a, b, (_, unit) in zip(bounds[:-1], bounds[1:], clips, strict=True)]
    stacked = {
        j: np.ascontiguousarray(np.concatenate([values[j] for values, _ in clips], axis=-1).transpose(2, 0, 1))
        for j in range(frames)
    }
    linked = dict(enumerate(pairs))
    results = [filter_frame(stacked, linked, frames, k, groups, settings) for k in range(frames)]
    return [[r[g].transpose(1, 2, 0) for r in results] for g, _ in groups]


# -- per-frame scale and shift of depth, in fixed windows ------------------------------------------------
@dataclass(frozen=True)
class AlignSettings:
    """trend_frames: as `StabilizeSettings.trend_frames` (slow course of the per-frame scale and shift
    kept); samples: correspondences per pair for the scale/shift fit."""

    trend_frames: float | None = 10.0
    samples: int = 1000
    iterations: int = 6
    min_correspondences: int = 64


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


def align_depth_window(
    depth: list[np.ndarray], pairs: list[PairCorrespondence], settings: AlignSettings
) -> tuple[list[float], list[float]]:
    """Per-frame (scale, shift) of a window's depth (each (H, W) float32), `pairs[j]` linking frames j
    and j+1: robust, jointly along the flow (`affine.solve_affines_from_samples`), slow course kept
    (`affine.remove_trend`)."""
    import torch

    from bufferany_core.stabilize.affine import remove_trend, solve_affines_from_samples

    samples = []
    for k, pair in enumerate(pairs):
        u, v = pair_depth_samples(depth[k], depth[k + 1], pair, settings.samples)
        if u.size >= settings.min_correspondences:
            samples.append((k, torch.from_numpy(u), torch.from_numpy(v)))
    scale, shift = solve_affines_from_samples(len(depth), samples, iterations=settings.iterations)
    if settings.trend_frames is not None and len(depth) > 1:
        scale, shift = remove_trend(scale, shift, sigma_frames=settings.trend_frames)
    return scale.tolist(), shift.tolist()
