"""The robust line fit in time along each pixel's trajectory (`stabilize.trajectory`, steps 3-4),
compiled with numba.

In numpy the fit was a dozen whole-plane operations per sample: at the models' 518 px working size
streaming those planes through memory, not the arithmetic, was most of the stabiliser's time. Here each
row's sums live in a few row-long buffers while every sample of the row is added in, one pass over the
samples per step. The loops do in float32, and in the same order, the operations the numpy version did
(no fast-math, no fused multiply-add), so the numbers are the same on every machine; only the global
robust scales (medians over the frame) stay in numpy.
"""

from __future__ import annotations

import numba
import numpy as np

from bufferany_core.stabilize.affine import MAD_TO_SIGMA

_HALF = np.float32(0.5)
# Frame k's own sample always counts a little, so a pixel whose whole trajectory is cut keeps its value.
_OWN_FLOOR = np.float32(1e-3)

# error_model="numpy": a zero determinant gives inf/nan as numpy did, not a ZeroDivisionError
_compiled = numba.njit(cache=True, nogil=True, error_model="numpy")
# Rows are independent, so the kernels run them on numba's threads (`numba.set_num_threads`; all cores by
# default) and give the same numbers whatever the number of threads.
_parallel = numba.njit(cache=True, nogil=True, error_model="numpy", parallel=True)


@_compiled
def _distance_row(samples, i, c0, y, reference, out):  # pragma: no cover - compiled
    """|samples[i, c0:c0 + C, y] - reference| (C, w) over the channels into `out` (w,): a vector norm,
    or for one channel the absolute difference."""
    channels, width = reference.shape
    if channels == 1:
        row, line = samples[i, c0, y], reference[0]
        for x in range(width):
            out[x] = abs(row[x] - line[x])
        return
    out[:] = 0
    for c in range(channels):
        row, line = samples[i, c0 + c, y], reference[c]
        for x in range(width):
            difference = row[x] - line[x]
            out[x] += difference * difference
    for x in range(width):
        out[x] = np.sqrt(out[x])


@_parallel
def pop_residuals(samples, c0, channels, valid, out):  # pragma: no cover - compiled
    """For each sample (n, c0:c0 + channels of C, h, w) of contiguous ascending offsets, its distance
    (into `out` (n, h, w)) to the median (channel-wise) of the 4 samples 1 and 2 frames before and after
    it on the same trajectory; a missing or invalid neighbour counts as the sample itself (no evidence
    against it)."""
    n, _, height, width = samples.shape
    for y in numba.prange(height):
        median = np.empty((channels, width), np.float32)
        for i in range(n):
            # a neighbour beyond the ends is the sample itself
            ja, jb = i - 2 if i >= 2 else i, i - 1 if i >= 1 else i
            jd, je = i + 1 if i + 1 < n else i, i + 2 if i + 2 < n else i
            for c in range(channels):
                own, row, k = samples[i, c0 + c, y], median[c], c0 + c
                ra, rb, rd, re = samples[ja, k, y], samples[jb, k, y], samples[jd, k, y], samples[je, k, y]
                oa, ob, od, oe = valid[ja, y], valid[jb, y], valid[jd, y], valid[je, y]
                for x in range(width):
                    a = ra[x] if oa[x] else own[x]
                    b = rb[x] if ob[x] else own[x]
                    d = rd[x] if od[x] else own[x]
                    e = re[x] if oe[x] else own[x]
                    # sorting network for 4 values: the median is the mean of the middle two
                    low = np.maximum(np.minimum(a, b), np.minimum(d, e))
                    high = np.minimum(np.maximum(a, b), np.maximum(d, e))
                    row[x] = (low + high) * _HALF
            _distance_row(samples, i, c0, y, median, out[i, y])


@_compiled
def _add_samples(sums, first, second, weight, t, samples, i, c0, y):  # pragma: no cover - compiled
    """Adds sample i (channels from c0) of row y, weighted by `weight` (w,), at time t to the row's sums: sums[0..2] the
    weights' moments (sum w, w t, w t^2), first[c] sum w v and second[c] sum w v t."""
    s0, s1, s2 = sums[0], sums[1], sums[2]
    for x in range(weight.shape[0]):
        s0[x] += weight[x]
        moment = weight[x] * t
        s1[x] += moment
        s2[x] += moment * t
    for c in range(first.shape[0]):
        row, y0, y1 = samples[i, c0 + c, y], first[c], second[c]
        for x in range(weight.shape[0]):
            term = row[x] * weight[x]
            y0[x] += term
            y1[x] += term * t


@_compiled
def _solve_row(sums, first, second, ridge, value, slope):  # pragma: no cover - compiled
    """The weighted least-squares line of each pixel of a row from its sums, a ridge on the slope:
    its value at t = 0 and its slope, each (C, w)."""
    s0, s1 = sums[0], sums[1]
    det = np.empty(s0.shape[0], np.float32)
    s2 = sums[2]
    for x in range(s0.shape[0]):
        s2[x] += ridge
        det[x] = s0[x] * s2[x] - s1[x] * s1[x]
    for c in range(first.shape[0]):
        y0, y1, v, m = first[c], second[c], value[c], slope[c]
        for x in range(s0.shape[0]):
            v[x] = (s2[x] * y0[x] - s1[x] * y1[x]) / det[x]
            m[x] = (s0[x] * y1[x] - s1[x] * y0[x]) / det[x]


@_parallel
def line_residuals(weights, samples, c0, channels, t, ridge, out):  # pragma: no cover - compiled
    """Each sample's (n, c0:c0 + channels of C, h, w) distance (into `out` (n, h, w)) to its pixel's line
    fitted with `weights` (n, h, w) at times t (n,) float32, `ridge` (float32) on the slope."""
    n, _, height, width = samples.shape
    for y in numba.prange(height):
        sums = np.zeros((3, width), np.float32)
        first, second = np.zeros((channels, width), np.float32), np.zeros((channels, width), np.float32)
        value, slope = np.empty((channels, width), np.float32), np.empty((channels, width), np.float32)
        line = np.empty((channels, width), np.float32)
        for i in range(n):
            _add_samples(sums, first, second, weights[i, y], t[i], samples, i, c0, y)
        _solve_row(sums, first, second, ridge, value, slope)
        for i in range(n):
            for c in range(channels):
                for x in range(width):
                    line[c, x] = value[c, x] + t[i] * slope[c, x]
            _distance_row(samples, i, c0, y, line, out[i, y])


@_parallel
def fitted_values(coarse_weights, valid, samples, c0, t, ridge, own, out):  # pragma: no cover - compiled
    """Each pixel's line (value at t = 0, into `out` (C', H, W)) through its samples (n, c0:c0 + C' of C,
    H, W), each weighted by its block's coarse weight (n, ceil(H / 2), ceil(W / 2)) where it is valid
    (n, H, W); frame k's own sample (index `own`) always counts a little."""
    n, _, height, width = samples.shape
    channels = out.shape[0]
    for y in numba.prange(height):
        sums = np.zeros((3, width), np.float32)
        first, second = np.zeros((channels, width), np.float32), np.zeros((channels, width), np.float32)
        value, slope = np.empty((channels, width), np.float32), np.empty((channels, width), np.float32)
        weight = np.empty(width, np.float32)
        for i in range(n):
            block, ok = coarse_weights[i, y // 2], valid[i, y]
            for x in range(width):
                weight[x] = np.float32(ok[x]) * block[x // 2]
            if i == own:
                for x in range(width):
                    weight[x] = np.maximum(weight[x], _OWN_FLOOR)
            _add_samples(sums, first, second, weight, t[i], samples, i, c0, y)
        _solve_row(sums, first, second, ridge, value, slope)
        out[:, y] = value


@_parallel
def tukey_weights(residual, sigma, k, weight):  # pragma: no cover - compiled
    """Tukey's biweights of `residual` (scale `sigma`, constant `k`) times `weight` (the same shape, bool
    or float32), computed in the residual's place (it is not needed after)."""
    scale = np.float32(1.0 / (k * sigma))
    flat, by = residual.ravel(), weight.ravel()
    for x in numba.prange(flat.shape[0]):
        u = flat[x] * scale
        u = np.float32(1.0) - u * u
        u = np.maximum(u, np.float32(0.0))
        flat[x] = u * u * np.float32(by[x])
    return residual


# Robust scales come from at most this many residuals (an even stride): the median of a subsample is
# as good a scale and the full sort was the filter's largest single cost.
SIGMA_SAMPLES = 20_000


@_compiled
def _picked(residual, mask, limit):  # pragma: no cover - compiled
    """residual[mask][::max(1, count // limit)]: the residuals a robust scale is taken from."""
    flat, keep = residual.ravel(), mask.ravel()
    count = 0
    for x in range(flat.shape[0]):
        count += keep[x]
    stride = max(1, count // limit)
    picked = np.empty((count + stride - 1) // stride, np.float32)
    taken = seen = 0
    for x in range(flat.shape[0]):
        if keep[x]:
            if seen == taken * stride:
                picked[taken] = flat[x]
                taken += 1
            seen += 1
    return picked


def robust_sigma(residual: np.ndarray, valid: np.ndarray, floor: float) -> float:
    """MAD_TO_SIGMA x the median of |residual| where `valid` (from at most about SIGMA_SAMPLES of them),
    at least `floor`."""
    picked = _picked(residual, valid, SIGMA_SAMPLES)
    if picked.size == 0:
        return max(floor, 1e-12)
    return max(float(MAD_TO_SIGMA * np.partition(picked, picked.size // 2)[picked.size // 2]), floor, 1e-12)


def robust_trajectory_fit(
    samples: np.ndarray,
    coarse: np.ndarray,
    channels: slice,
    valid: np.ndarray,
    own: int,
    *,
    ridge: float,
    outlier_k: float,
    iterations: int,
) -> np.ndarray:
    """Frame k's value (C', H, W) of the `channels` of its trajectory samples (n, C, H, W) float32,
    C-contiguous, of contiguous ascending offsets (frame k's own at `own`), valid (n, H, W), fitted
    together (a pass): a robust line fit in time (`ridge` on the slope),
    `iterations` robust means, the first weighted by the pop test only; `coarse`: the samples' every
    other pixel of every other row (`Trajectories.sample`).

    Outliers: each sample against the median of the 4 samples 1-2 frames before and after it on the
    trajectory (a pop is an outlier against both, a slow drift is not), then against the line (a wrong
    flow, a moving object the cycle check missed); Tukey weights with `outlier_k` robust sigmas (from
    the residuals' median absolute value over the frame). The outlier weights come from the coarse
    grid and stand for their 2 x 2 block (pops are regions, wrong flow and missed motion come in
    patches): a quarter of the cost; the line itself is fitted per pixel over its own valid samples."""
    # the compiled kernels do not check their indices: every shape is checked here
    if samples.dtype != np.float32 or coarse.dtype != np.float32 or samples.ndim != 4:
        raise ValueError(f"the robust fit needs float32 samples (n, C, H, W), got {samples.dtype} {samples.shape} and {coarse.dtype}")
    n, stack, height, width = samples.shape
    if valid.shape != (n, height, width) or valid.dtype != np.bool_:
        raise ValueError(f"valid must be bool {(n, height, width)}, got {valid.dtype} {valid.shape}")
    if coarse.shape != (n, stack, (height + 1) // 2, (width + 1) // 2):
        raise ValueError(f"coarse must be the samples' every other pixel of every other row, got {coarse.shape} for {samples.shape}")
    c0, stop, step = channels.indices(stack)
    if step != 1 or stop <= c0 or not 0 <= own < n:
        raise ValueError(f"a pass is a run of the stack's {stack} channels and `own` one of its {n} samples, got {channels} and {own}")
    count = stop - c0
    # one pass's channels of the whole stack: the kernels read rows of the C-contiguous stack in place
    samples, coarse = np.ascontiguousarray(samples), np.ascontiguousarray(coarse)
    t = (np.arange(n) - own).astype(np.float32)
    ridge32 = np.float32(ridge)
    coarse_ok = np.ascontiguousarray(valid[:, ::2, ::2])
    floor = 1e-6 * float(np.abs(samples[own, channels]).mean())
    pop = np.empty(coarse_ok.shape, np.float32)
    pop_residuals(coarse, c0, count, coarse_ok, pop)
    base = tukey_weights(pop, robust_sigma(pop, coarse_ok & (pop > 0), floor), outlier_k, coarse_ok)
    weights = base
    for _ in range(iterations - 1):
        weights[own] = np.maximum(weights[own], _OWN_FLOOR)
        residual = np.empty(coarse_ok.shape, np.float32)
        line_residuals(weights, coarse, c0, count, t, ridge32, residual)
        weights = tukey_weights(residual, robust_sigma(residual, base > 0, floor), outlier_k, base)
    out = np.empty((count, *samples.shape[2:]), np.float32)
    fitted_values(weights, valid, samples, c0, t, ridge32, own, out)
    return out
