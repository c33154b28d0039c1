"""Per-frame scale and shift that make a flickering depth clip agree with itself along the flow.

Each frame k gets (a_k, b_k) so that a_k D_k + b_k matches a_{k+1} D_{k+1} at valid flow
correspondences. All frames are solved together by iteratively reweighted least squares with
Huber then Tukey weights (outliers: flow errors the masks missed, moving objects whose depth
really changes), so one bad pair cannot drag the shot.
"""

from __future__ import annotations

import numpy as np
import torch

from bufferany_core.flow.pairs import FramePairs
from bufferany_core.flow.warp import backward_warp

HUBER_K = 1.345  # Huber's constant: 95% efficiency on Gaussian residuals
TUKEY_K = 4.685  # Tukey's biweight constant: 95% efficiency on Gaussian residuals
HUBER_ITERATIONS = 2  # convex Huber steps first, to start the redescending Tukey steps near the answer
# Median absolute deviation -> standard deviation for Gaussian data (1 / Phi^-1(3/4)).
MAD_TO_SIGMA = 1.4826


# Residuals below this fraction of the data's spread count as exact: without a floor, noise-free data
# would make sigma ~ 0 and the weights arbitrary.
_RELATIVE_SIGMA_FLOOR = 1e-4


ANCHOR_RIDGE = 1.0  # times the pairs' mean squared residual scale: the pull of each (scale, shift) to the plain fit


def sigma_floor(data: np.ndarray) -> float:
    """The smallest residual scale of a fit to `data` (1-D float64): 1e-4 times its standard deviation."""
    return _RELATIVE_SIGMA_FLOOR * float(np.std(data, ddof=1)) + 1e-300


def robust_scale(magnitude: np.ndarray, floor: float) -> float:
    """1.4826 * the (lower) median of absolute residuals (1-D), at least `floor`."""
    middle = (magnitude.size - 1) // 2
    return max(MAD_TO_SIGMA * float(np.partition(magnitude, middle)[middle]), floor)


def robust_weights(magnitude: np.ndarray, iteration: int, sigma: float | np.ndarray) -> np.ndarray:
    """IRLS weights of absolute residuals at scale `sigma` (`robust_scale`; one per residual or one for
    all): Huber for the first `HUBER_ITERATIONS` iterations, then Tukey's biweight, which gives gross
    outliers (a moving object's pixels, all off to one side) no weight at all, where Huber would still
    let them pull."""
    if iteration < HUBER_ITERATIONS:
        return np.minimum(HUBER_K * sigma / np.maximum(magnitude, 1e-300), 1.0)
    return np.square(np.maximum(1.0 - np.square(magnitude / (TUKEY_K * sigma)), 0.0))


def correspondence_samples(
    values: torch.Tensor, pairs: FramePairs, index: int, *, max_samples: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Values (u from frame k, v from frame k+1), each (n, C) float64 on the CPU, at the valid
    correspondences of pair k = `index` of a clip (T, C, H, W), both directions pooled, at most
    `max_samples` drawn at random (reproducibly from `generator`)."""
    k = index
    current, following = values[k : k + 1], values[k + 1 : k + 2]
    ahead, inside_fw = backward_warp(following, pairs.flows_fw[k : k + 1])  # frame k+1 on k's grid
    behind, inside_bw = backward_warp(current, pairs.flows_bw[k : k + 1])  # frame k on k+1's grid
    mask_fw = (pairs.valid_fw[k : k + 1] & inside_fw)[:, 0]  # (1, H, W)
    mask_bw = (pairs.valid_bw[k : k + 1] & inside_bw)[:, 0]
    u = torch.cat([current.movedim(1, -1)[mask_fw], behind.movedim(1, -1)[mask_bw]])  # (n, C)
    v = torch.cat([ahead.movedim(1, -1)[mask_fw], following.movedim(1, -1)[mask_bw]])
    if u.shape[0] > max_samples:
        pick = torch.randperm(u.shape[0], generator=generator)[:max_samples].to(u.device)
        u, v = u[pick], v[pick]
    return u.double().cpu(), v.double().cpu()


def robust_affine_fit(
    source: torch.Tensor, target: torch.Tensor, *, iterations: int = 6
) -> tuple[float, float]:
    """(a, b) fitting a * source + b to target (1-D float64 tensors) robustly (IRLS, `robust_weights`).
    Too few or flat samples give (1, mean offset)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    if source.size < 2 or float(source.std(ddof=1)) <= 1e-12 * max(1.0, float(np.abs(source).mean())):
        return 1.0, float((target - source).mean()) if source.size else 0.0
    weights = np.ones_like(source)
    design = np.stack([source, np.ones_like(source)], axis=1)  # (n, 2)
    floor = sigma_floor(target)
    solution = np.array([1.0, 0.0])
    for iteration in range(iterations):
        weighted = design * weights[:, None]
        solution = np.linalg.solve(weighted.T @ design, weighted.T @ target)
        magnitude = np.abs(design @ solution - target)
        weights = robust_weights(magnitude, iteration, robust_scale(magnitude, floor))
    return float(solution[0]), float(solution[1])


def solve_frame_affines(
    depth: torch.Tensor,
    pairs: FramePairs,
    *,
    max_samples: int = 20_000,
    iterations: int = 6,
    min_correspondences: int = 64,
    seed: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and shift per frame, each (T,) float64 on the CPU, for depth (T, 1, H, W).

    Pair k contributes mean_i w_i (a_k u_i + b_k - a_{k+1} v_i - b_{k+1})^2 over its sampled
    correspondences. Correspondences alone cannot see one scale and shift common to a run of linked
    frames (and would happily shrink every a_k to 0), so each run is constrained to mean(a) = 1 and
    mean(b) = 0: on average, frames keep their values. Pairs with fewer than `min_correspondences`
    valid pixels (a cut, a whip pan) do not link their frames.
    """
    pairs.check_clip(depth, "depth")
    if depth.shape[1] != 1:
        raise ValueError(f"depth must be (T, 1, H, W), got {tuple(depth.shape)}")
    frames = depth.shape[0]
    generator = torch.Generator().manual_seed(seed)
    samples: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    for k in range(len(pairs)):
        u, v = correspondence_samples(depth, pairs, k, max_samples=max_samples, generator=generator)
        if u.shape[0] >= min_correspondences:
            samples.append((k, u[:, 0], v[:, 0]))
    return solve_affines_from_samples(frames, samples, iterations=iterations)


def solve_affines_from_samples(
    frames: int, samples: list[tuple[int, torch.Tensor, torch.Tensor]], *, iterations: int = 6
) -> tuple[torch.Tensor, torch.Tensor]:
    """The solve of `solve_frame_affines` from correspondence samples already drawn: (k, u, v) per linked
    pair k, u the values on frame k and v the corresponding values on frame k+1 (1-D float64)."""
    runs = _linked_runs(frames, [k for k, _, _ in samples])
    # Equality constraints, two per run: sum of a over the run = its length, sum of b = 0.
    constraints = np.zeros((2 * len(runs), 2 * frames))
    targets = np.zeros(2 * len(runs))
    for r, (first, last) in enumerate(runs):
        constraints[2 * r, 2 * first : 2 * last + 2 : 2] = 1.0
        constraints[2 * r + 1, 2 * first + 1 : 2 * last + 2 : 2] = 1.0
        targets[2 * r] = last - first + 1
    solution = np.array([1.0, 0.0] * frames)
    if samples:
        # All pairs' samples in one array (`pair` says whose): each IRLS step's sums are one bincount each.
        linked = np.array([k for k, _, _ in samples])
        sizes = [len(u) for _, u, _ in samples]
        pair = np.repeat(np.arange(len(samples)), sizes)
        bounds = np.cumsum([0, *sizes])
        u = np.concatenate([np.asarray(u, np.float64) for _, u, _ in samples])
        v = np.concatenate([np.asarray(v, np.float64) for _, _, v in samples])
        floors = [sigma_floor(v[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
        products = {"uu": u * u, "u": u, "uv": u * v, "1": np.ones_like(u), "v": v, "vv": v * v}
        # rows (u, 1, -v, -1): the 4 x 4 block of pair k is sum_i w_i r_i r_i^T, symbols for its entries
        block = [["uu", "u", "-uv", "-u"], ["u", "1", "-v", "-1"], ["-uv", "-v", "vv", "v"], ["-u", "-1", "v", "1"]]
        kkt = np.zeros((2 * frames + len(targets), 2 * frames + len(targets)))
        kkt[2 * frames :, : 2 * frames], kkt[: 2 * frames, 2 * frames :] = constraints, constraints.T
        rhs = np.concatenate([np.zeros(2 * frames), targets])
        weights = np.ones_like(u)
        anchor, ridge = None, 0.0
        for iteration in range(iterations):
            share = weights / np.maximum(np.bincount(pair, weights=weights), 1e-300)[pair]
            sums = {key: np.bincount(pair, weights=share * value, minlength=len(samples)) for key, value in products.items()}
            system = np.zeros((2 * frames, 2 * frames))
            for i, j in ((i, j) for i in range(4) for j in range(4)):
                entry = block[i][j]
                system[2 * linked + i, 2 * linked + j] += -sums[entry[1:]] if entry[0] == "-" else sums[entry]
            # Minimise theta^T M theta (+ the ridge to the plain fit) subject to C theta = c: the KKT
            # system [[2M, C^T], [C, 0]].
            kkt[: 2 * frames, : 2 * frames] = 2 * system + 2 * ridge * np.eye(2 * frames)
            if anchor is not None:
                rhs[: 2 * frames] = 2 * ridge * anchor
            solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0][: 2 * frames]
            at = 2 * linked[pair]
            magnitude = np.abs(solution[at] * u + solution[at + 1] - solution[at + 2] * v - solution[at + 3])
            sigma = np.array([robust_scale(magnitude[a:b], f) for a, b, f in zip(bounds[:-1], bounds[1:], floors, strict=True)])
            weights = robust_weights(magnitude, iteration, sigma[pair])
            if anchor is None:
                # The reweighted fits are held near the plain least-squares fit, as strongly as a pair's
                # residual level: without it a frame's scale can fall to zero, its pairs keeping only the
                # samples where that costs nothing (inverse depth near 0: sky, far walls), and the depth
                # after it goes flat.
                anchor, ridge = solution.copy(), ANCHOR_RIDGE * float(np.mean(np.square(sigma)))
    scale, shift = torch.from_numpy(solution[0::2].copy()), torch.from_numpy(solution[1::2].copy())
    # A non-positive scale would flip near and far: only a degenerate frame (flat depth) gets there.
    bad = ~(scale > 0) | ~torch.isfinite(scale) | ~torch.isfinite(shift)
    scale[bad], shift[bad] = 1.0, 0.0
    return scale, shift


def _linked_runs(frames: int, linked_pairs: list[int]) -> list[tuple[int, int]]:
    """(first, last) frame of each run of frames joined by the pairs k (frame k to k+1) in `linked_pairs`."""
    linked = set(linked_pairs)
    runs, first = [], 0
    for k in range(frames - 1):
        if k not in linked:
            runs.append((first, k))
            first = k + 1
    runs.append((first, frames - 1))
    return runs


def remove_trend(
    scale: torch.Tensor, shift: torch.Tensor, *, sigma_frames: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep only the frame-to-frame part of the corrections: divide out their slow course, so that
    slow changes the input had (a dolly moving inverse depth along) survive and only flicker is
    removed. The slow course is a Gaussian-weighted (sigma `sigma_frames`) local linear fit, which
    follows a steady ramp exactly, also at the ends of the shot. Returns the new (scale, shift)."""
    if sigma_frames <= 0:
        raise ValueError(f"sigma_frames must be > 0, got {sigma_frames}")
    time = torch.arange(scale.numel(), dtype=torch.float64)
    offsets = time[None, :] - time[:, None]  # (T, T): frame j relative to frame k
    weights = torch.exp(-0.5 * (offsets / sigma_frames) ** 2)
    design = torch.stack([torch.ones_like(offsets), offsets], dim=-1)  # (T, T, 2)
    normal = torch.einsum("kj,kja,kjb->kab", weights, design, design)  # (T, 2, 2)
    normal = normal + 1e-9 * torch.eye(2, dtype=torch.float64)  # a one-frame shot has no slope
    values = torch.stack([scale, shift], dim=1)  # (T, 2)
    moments = torch.einsum("kj,kja,jc->kac", weights, design, values)  # (T, 2, 2)
    smooth = torch.linalg.solve(normal, moments)[:, 0]  # intercept at offset 0: (T, 2)
    smooth_scale, smooth_shift = smooth[:, 0], smooth[:, 1]
    # corrected = (a D + b - B) / A, with A and B the slow course of a and b
    return scale / smooth_scale, (shift - smooth_shift) / smooth_scale
