"""Putting windows on one shot-wide scale: the shot's reference range, cross-fades, conventions (the
least-squares scale and shift itself is `bufferany_core.scale_shift`, shared with the metrics).

Arithmetic is float64 on the CPU in a fixed order, so two processes given the same predictions
produce the same numbers (farm chunks agree with one run of the whole shot).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bufferany_core.scale_shift import sample_pixels

# Anchor-frame quantiles mapped to 0 and 1: the shot's relative inverse depth is 0 at its far end
# and 1 at its near end (robust to a few outlier pixels).
REFERENCE_QUANTILES = (0.02, 0.98)
# Relative distance = 1 / (inverse depth + DISTANCE_OFFSET), floored: the shot's far end (inverse
# depth 0) lands at distance 100, its near end (inverse depth 1) at about 1, never beyond 1 / floor.
DISTANCE_OFFSET = 0.01
DISTANCE_FLOOR = 1e-3
DISTANCE_RULE = f"distance = 1 / max(inverse + {DISTANCE_OFFSET}, {DISTANCE_FLOOR}); inverse is 0 at the anchors' {REFERENCE_QUANTILES[0]:g} quantile, 1 at their {REFERENCE_QUANTILES[1]:g} quantile"


def reference_range(anchors: Sequence[np.ndarray], *, stride: int = 1) -> tuple[float, float]:
    """(offset, scale) mapping raw anchor predictions to the shot's relative inverse depth:
    `(raw - offset) * scale` is 0 at the low quantile and 1 at the high one."""
    values = sample_pixels(anchors, stride)
    lo, hi = np.quantile(values, REFERENCE_QUANTILES)
    width = hi - lo
    return float(lo), float(1.0 / width) if width > 1e-12 else 1.0


def renormalise(normals: np.ndarray, *, axis: int = 0, dtype: np.dtype | type | None = None) -> np.ndarray:
    """Unit vectors along `axis` (a cross-fade of unit normals is shorter than 1); zero stays zero.
    Computed in the input's type; `dtype` is the result's (the last division writes it straight
    there, without a full-size copy in the input's type). The same numbers as np.linalg.norm's
    length, with fewer full-size temporaries."""
    length = np.add.reduce(normals * normals, axis=axis, keepdims=True)
    np.sqrt(length, out=length)
    np.maximum(length, 1e-12, out=length)
    out = np.empty(normals.shape, dtype or normals.dtype)
    return np.divide(normals, length, out=out, casting="same_kind")


def inverse_to_distance(inverse: np.ndarray) -> np.ndarray:
    """Relative distance (bigger = farther, Blender's meaning) from the shot's relative inverse depth."""
    return 1.0 / np.maximum(inverse + DISTANCE_OFFSET, DISTANCE_FLOOR)
