"""Procedural shots with exact depth and normals and injected flicker, to check the stabiliser.

`procedural_shot` ray-casts textured planes (a tilted back wall and fronto-parallel cards, one of
them sliding) through a trucking, dollying and panning pinhole camera, so depth and normals are
exact per pixel. The textures are functions of each plane's own coordinates, so the plate moves
consistently and optical flow can be estimated from it as from a real plate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from bufferany_core.evaluation.metrics import (
    align_depth,
    depth_accuracy,
    normal_accuracy,
    temporal_gradient_error,
)


@dataclass(frozen=True)
class Card:
    """A fronto-parallel textured rectangle at world depth `z`, moving by `velocity` (x, y) per frame."""

    z: float
    x_range: tuple[float, float]
    y_range: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)


DEFAULT_CARDS = (
    Card(z=3.0, x_range=(-1.6, -0.4), y_range=(-0.8, 0.5), tint=(1.0, 0.7, 0.5)),
    Card(z=4.5, x_range=(0.3, 1.5), y_range=(-1.2, 0.2), velocity=(-0.03, 0.0), tint=(0.5, 0.8, 1.0)),
    Card(z=6.0, x_range=(-0.5, 0.9), y_range=(0.4, 1.4), tint=(0.7, 1.0, 0.6)),
)


@dataclass(frozen=True)
class Shot:
    plate: np.ndarray  # (T, 3, H, W) float32 display-referred [0, 1]
    inverse_depth: np.ndarray  # (T, 1, H, W) float32, 1 / camera z
    normals: np.ndarray  # (T, 3, H, W) float32 unit, camera space x right, y up, z towards the camera


def _value_noise(u: np.ndarray, v: np.ndarray, seed: int, cell: float) -> np.ndarray:
    lattice = np.random.default_rng(seed).random((64, 64))
    x, y = u / cell, v / cell
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    fx, fy = x - x0, y - y0
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)  # smoothstep: no visible lattice creases
    corner = lambda i, j: lattice[(y0 + j) % 64, (x0 + i) % 64]  # noqa: E731
    top = corner(0, 0) * (1 - fx) + corner(1, 0) * fx
    bottom = corner(0, 1) * (1 - fx) + corner(1, 1) * fx
    return top * (1 - fy) + bottom * fy


def _texture(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    return (
        0.45 * _value_noise(u, v, seed, 0.08)
        + 0.3 * _value_noise(u, v, seed + 1, 0.25)
        + 0.25 * (0.5 + 0.5 * np.sin(9.0 * u + 3.0 * np.sin(7.0 * v)))
    )


def procedural_shot(
    *,
    frames: int = 24,
    height: int = 96,
    width: int = 128,
    truck: float = 0.02,
    dolly: float = 0.03,
    pan_degrees: float = 0.15,
    cards: tuple[Card, ...] = DEFAULT_CARDS,
) -> Shot:
    """Render `frames` frames; per frame the camera moves `truck` right, `dolly` forward (world units)
    and turns `pan_degrees` about its vertical axis. The back wall is the plane z = 8 + 1.5 y."""
    focal = 0.9 * width
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack(
        [(xs - (width - 1) / 2) / focal, (ys - (height - 1) / 2) / focal, np.ones_like(xs)]
    )  # (3, H, W)
    plates, inverse, normals = [], [], []
    for k in range(frames):
        angle = np.radians(pan_degrees * k)
        rotation = np.array(
            [[np.cos(angle), 0, np.sin(angle)], [0, 1, 0], [-np.sin(angle), 0, np.cos(angle)]]
        )
        centre = np.array([truck * k, 0.0, dolly * k])
        world_rays = np.einsum("ij,jhw->ihw", rotation, rays)
        # Back wall z - 1.5 y = 8 (y down, z forward in world): lambda = (8 - n.C) / (n.d), n = (0, -1.5, 1).
        wall_n = np.array([0.0, -1.5, 1.0])
        lam = (8.0 - wall_n @ centre) / np.einsum("i,ihw->hw", wall_n, world_rays)
        wall_n = -wall_n  # the side that faces the camera
        hit = centre[:, None, None] + lam * world_rays
        colour = (
            _texture(hit[0], hit[2] * 0.6 + hit[1] * 0.4, seed=10)[None]
            * np.array([0.9, 0.85, 0.8])[:, None, None]
        )
        normal = np.broadcast_to((wall_n / np.linalg.norm(wall_n))[:, None, None], (3, height, width)).copy()
        for index, card in enumerate(cards):
            card_lam = (card.z - centre[2]) / world_rays[2]
            point = centre[:, None, None] + card_lam * world_rays
            px, py = point[0] - card.velocity[0] * k, point[1] - card.velocity[1] * k
            inside = (
                (card_lam > 0)
                & (card_lam < lam)
                & (px >= card.x_range[0])
                & (px <= card.x_range[1])
                & (py >= card.y_range[0])
                & (py <= card.y_range[1])
            )
            lam = np.where(inside, card_lam, lam)
            card_colour = _texture(px, py, seed=20 + index)[None] * np.array(card.tint)[:, None, None]
            colour = np.where(inside[None], card_colour, colour)
            normal = np.where(inside[None], np.array([0.0, 0.0, -1.0])[:, None, None], normal)
        # Camera z = lambda (rays have unit z in camera space). Normals to camera space (rotate back),
        # then from y down / z forward to y up / z towards the camera.
        camera_normal = np.einsum("ji,jhw->ihw", rotation, normal)
        plates.append(np.clip(colour, 0, 1))
        inverse.append(1.0 / lam[None])
        normals.append(camera_normal * np.array([1.0, -1.0, -1.0])[:, None, None])
    return Shot(
        plate=np.stack(plates).astype(np.float32),
        inverse_depth=np.stack(inverse).astype(np.float32),
        normals=np.stack(normals).astype(np.float32),
    )


def add_depth_flicker(
    inverse_depth: np.ndarray,
    *,
    seed: int = 0,
    scale_sigma: float = 0.15,
    shift_sigma: float = 0.05,
    low_frequency: float = 0.03,
    noise: float = 0.01,
) -> np.ndarray:
    """What a per-frame depth model does to a clip (T, 1, H, W): a random scale exp(N(0, scale_sigma))
    and shift N(0, shift_sigma) per frame, a random smooth (low spatial frequency) error field of
    amplitude `low_frequency` per frame, and pixel noise `noise`; shift, field and noise in units of
    the clip's value range."""
    rng = np.random.default_rng(seed)
    frames, _, height, width = inverse_depth.shape
    spread = float(np.percentile(inverse_depth, 99) - np.percentile(inverse_depth, 1))
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
    out = np.empty_like(inverse_depth)
    for k in range(frames):
        field = (
            sum(
                rng.normal() * np.cos(np.pi * (fx * xs + fy * ys) + rng.uniform(0, 2 * np.pi))
                for fx, fy in ((1, 0), (0, 1), (1, 1), (2, 1))
            )
            / 2.0
        )
        scale = np.exp(rng.normal(0, scale_sigma))
        shift = rng.normal(0, shift_sigma) * spread
        out[k, 0] = (
            scale * inverse_depth[k, 0]
            + shift
            + spread * (low_frequency * field + noise * rng.standard_normal((height, width)))
        )
    return out.astype(np.float32)


def add_normal_flicker(
    normals: np.ndarray, *, seed: int = 0, tilt: float = 0.08, noise: float = 0.03
) -> np.ndarray:
    """Per-frame random global tilt (a random small vector `tilt` added to all normals) and pixel noise, renormalised."""
    rng = np.random.default_rng(seed)
    out = normals + rng.normal(0, tilt, (normals.shape[0], 3, 1, 1)) + rng.normal(0, noise, normals.shape)
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def depth_scores(inverse_prediction: np.ndarray, inverse_truth: np.ndarray) -> tuple[float, float]:
    """(temporal gradient error, AbsRel) of a relative inverse depth clip (T, 1, H, W) against the
    true inverse depth, with `bufferany_core.evaluation.metrics` (one scale and shift per shot)."""
    truth = 1.0 / inverse_truth[:, 0].astype(np.float64)
    aligned, _, _ = align_depth(inverse_prediction[:, 0], truth)
    return temporal_gradient_error(aligned, truth), depth_accuracy(inverse_prediction[:, 0], truth)["abs_rel"]


def normal_angle(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Mean angular error in degrees of normals (T, 3, H, W) (`bufferany_core.evaluation.metrics`)."""
    return normal_accuracy(prediction.transpose(0, 2, 3, 1), truth.transpose(0, 2, 3, 1))["mean_angle"]


def normal_temporal_error(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Mean |(N_{k+1} - N_k) - (N*_{k+1} - N*_k)| per pixel and channel of unit normals (T, 3, H, W):
    the normals' counterpart of the temporal gradient error (no fit needed)."""
    return float(np.abs(np.diff(prediction, axis=0) - np.diff(truth, axis=0)).mean())


def add_hard_depth_flicker(
    inverse_depth: np.ndarray,
    *,
    seed: int = 0,
    scale_sigma: float = 0.05,
    shift_sigma: float = 0.02,
    drift: float = 0.06,
    drift_memory: float = 0.85,
    pop_rate: float = 0.1,
    pop_size: float = 0.12,
    noise: float = 0.01,
) -> np.ndarray:
    """Flicker closer to what image models do to a clip (T, 1, H, W): a small per-frame scale and shift,
    LOCAL errors that drift slowly (a smooth random field whose coefficients follow an AR(1) process with
    correlation `drift_memory` per frame, amplitude `drift`), POPS (with probability `pop_rate` per frame
    a random elliptical region jumps by `pop_size` for one or two frames), and pixel noise; amplitudes in
    units of the clip's value range."""
    rng = np.random.default_rng(seed)
    frames, _, height, width = inverse_depth.shape
    spread = float(np.percentile(inverse_depth, 99) - np.percentile(inverse_depth, 1))
    ys, xs = np.mgrid[0:height, 0:width] / max(height, width)
    basis = [
        np.cos(np.pi * (fx * xs + fy * ys) + phase)
        for (fx, fy), phase in zip(((1, 0), (0, 1), (1, 1), (2, 1), (1, 2), (3, 0)), rng.uniform(0, 2 * np.pi, 6), strict=True)
    ]
    coefficients = rng.normal(size=len(basis))
    innovation = np.sqrt(1 - drift_memory**2)
    pops: list[tuple[int, np.ndarray]] = []  # (last frame, offset field)
    out = np.empty_like(inverse_depth)
    for k in range(frames):
        coefficients = drift_memory * coefficients + innovation * rng.normal(size=len(basis))
        field = sum(c * b for c, b in zip(coefficients, basis, strict=True)) / np.sqrt(len(basis))
        if rng.random() < pop_rate:
            cy, cx = rng.uniform(0.2, 0.8) * height, rng.uniform(0.2, 0.8) * width
            ry, rx = rng.uniform(0.1, 0.25) * height, rng.uniform(0.1, 0.25) * width
            inside = ((np.arange(height)[:, None] - cy) / ry) ** 2 + ((np.arange(width)[None] - cx) / rx) ** 2 < 1
            pops.append((k + int(rng.integers(0, 2)), rng.choice([-1, 1]) * pop_size * spread * inside))
        pops = [(last, offset) for last, offset in pops if last >= k]
        popped = sum((offset for _, offset in pops), np.zeros((height, width)))
        out[k, 0] = (
            np.exp(rng.normal(0, scale_sigma)) * inverse_depth[k, 0]
            + rng.normal(0, shift_sigma) * spread
            + spread * (drift * field + noise * rng.standard_normal((height, width)))
            + popped
        )
    return out.astype(np.float32)


def moving_object_mask(shot_kwargs: dict, cards: tuple[Card, ...] = DEFAULT_CARDS) -> np.ndarray:
    """(T, H, W) bool: pixels where a moving card is seen (the shot rendered without the moving cards
    differs there), dilated by 2 px to include the edges it uncovers."""
    with_all = procedural_shot(cards=cards, **shot_kwargs).inverse_depth[:, 0]
    still = procedural_shot(cards=tuple(c for c in cards if c.velocity == (0.0, 0.0)), **shot_kwargs).inverse_depth[:, 0]
    mask = np.abs(with_all - still) > 1e-6
    grown = mask.copy()
    for axis in (1, 2):
        for step in (-2, -1, 1, 2):
            grown |= np.roll(mask, step, axis=axis)
    return grown
