"""Least-squares scale and shift between images: how the pipeline puts windows on one shot-wide
scale and how the metrics align a prediction to ground truth (one fit, the same numbers).

Arithmetic is float64 in a fixed order, so two processes given the same images produce the same
numbers (farm chunks agree with one run of the whole shot). numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def sample_pixels(images: Sequence[np.ndarray], stride: int) -> np.ndarray:
    """Every `stride`-th pixel of each image in each of its last two axes, as one float64 vector."""
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
    x = sample_pixels(source, stride)
    y = sample_pixels(target, stride)
    x_mean, y_mean = x.mean(), y.mean()
    var = np.mean((x - x_mean) ** 2)
    if var <= 1e-12 * max(1.0, x_mean**2):
        return 1.0, float(y_mean - x_mean)
    scale = float(np.mean((x - x_mean) * (y - y_mean)) / var)
    return scale, float(y_mean - scale * x_mean)
