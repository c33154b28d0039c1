"""Putting windows on one shot-wide scale: least-squares scale and shift, cross-fades, conventions.

Arithmetic is float64 on the CPU in a fixed order, so two processes given the same predictions
produce the same numbers (farm chunks agree with one run of the whole shot).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Anchor-frame quantiles mapped to 0 and 1: the shot's relative inverse depth is 0 at its far end
# and 1 at its near end (robust to a few outlier pixels).
REFERENCE_QUANTILES = (0.02, 0.98)
# Relative distance = 1 / (inverse depth + DISTANCE_OFFSET), floored: the shot's far end (inverse
# depth 0) lands at distance 100, its near end (inverse depth 1) at about 1, never beyond 1 / floor.
DISTANCE_OFFSET = 0.01
DISTANCE_FLOOR = 1e-3
DISTANCE_RULE = f"distance = 1 / max(inverse + {DISTANCE_OFFSET}, {DISTANCE_FLOOR}); inverse is 0 at the anchors' {REFERENCE_QUANTILES[0]:g} quantile, 1 at their {REFERENCE_QUANTILES[1]:g} quantile"


def _samples(images: Sequence[np.ndarray], stride: int) -> np.ndarray:
    return np.concatenate([np.asarray(im, dtype=np.float64)[..., ::stride, ::stride].ravel() for im in images])


def fit_scale_shift(
    source: Sequence[np.ndarray], target: Sequence[np.ndarray], *, stride: int = 1
) -> tuple[float, float]:
    """(scale, shift) minimising sum((scale * source + shift - target)^2) over all pixels of all
    pairs (every `stride`-th pixel in each image axis). A flat source gets scale 1 and the mean offset."""
    if len(source) != len(target) or not source:
        raise ValueError(f"need matching non-empty lists of images, got {len(source)} and {len(target)}")
    for s, t in zip(source, target, strict=True):
        if np.shape(s) != np.shape(t):
            raise ValueError(f"source and target shapes differ: {np.shape(s)} vs {np.shape(t)}")
    x = _samples(source, stride)
    y = _samples(target, stride)
    x_mean, y_mean = x.mean(), y.mean()
    var = np.mean((x - x_mean) ** 2)
    if var <= 1e-12 * max(1.0, x_mean**2):
        return 1.0, float(y_mean - x_mean)
    scale = float(np.mean((x - x_mean) * (y - y_mean)) / var)
    return scale, float(y_mean - scale * x_mean)


def reference_range(anchors: Sequence[np.ndarray], *, stride: int = 1) -> tuple[float, float]:
    """(offset, scale) mapping raw anchor predictions to the shot's relative inverse depth:
    `(raw - offset) * scale` is 0 at the low quantile and 1 at the high one."""
    values = _samples(anchors, stride)
    lo, hi = np.quantile(values, REFERENCE_QUANTILES)
    width = hi - lo
    return float(lo), float(1.0 / width) if width > 1e-12 else 1.0


def renormalise(normals: np.ndarray, *, axis: int = 0) -> np.ndarray:
    """Unit vectors along `axis` (a cross-fade of unit normals is shorter than 1); zero stays zero."""
    length = np.linalg.norm(normals, axis=axis, keepdims=True)
    return normals / np.maximum(length, 1e-12)


def inverse_to_distance(inverse: np.ndarray) -> np.ndarray:
    """Relative distance (bigger = farther, Blender's meaning) from the shot's relative inverse depth."""
    return 1.0 / np.maximum(inverse + DISTANCE_OFFSET, DISTANCE_FLOOR)
