"""The shot stabiliser's bounded working size: a plate larger than it is stabilised on shrunk copies and
keeps its full-resolution detail; plates at or below it go through exactly as before."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import torch

from bufferany_core.flow import load_flow_estimator
from bufferany_core.pipeline.stabilizing import STABILIZE_WORKING_SIZE, ShotStabilizer, stabilizer_settings
from bufferany_core.stabilize.working_size import working_shape
from bufferany_core.testing.procedural_shot import add_depth_flicker, add_normal_flicker, procedural_shot

H, W = 64, 96
WORKING = 32  # the plate's short side halved
FRAMES = 24


class ShapeRecordingFlow:
    """DIS, recording the size of the frames it is given."""

    def __init__(self) -> None:
        self.dis = load_flow_estimator("dis", device=torch.device("cpu"))
        self.name = self.dis.name
        self.shapes: set[tuple[int, int]] = set()

    def estimate_flow(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        self.shapes.add(tuple(a.shape[-2:]))
        return self.dis.estimate_flow(a, b)


def stabilise(plate, depth, normals, *, estimator, working_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Plate (T, H, W, 3), depth (T, H, W), normals (T, 3, H, W) through ShotStabilizer, in shot order."""
    stabilizer = ShotStabilizer(len(plate), ["depth", "normal"], estimator, torch.device("cpu"), working_size=working_size)
    out = {}
    for k in range(len(plate)):
        for position, _, d, n in stabilizer.push(k, SimpleNamespace(rgb=plate[k]), depth[k], normals[k]):
            out[position] = (d, n)
    assert sorted(out) == list(range(len(plate)))
    return np.stack([out[k][0] for k in out]), np.stack([out[k][1] for k in out])


def high_pass_energy(frame: np.ndarray) -> float:
    """Mean squared fine detail (the frame minus its 1.5 px Gaussian blur) of an (H, W) or (H, W, C) frame."""
    frame = frame.astype(np.float32)
    return float(np.square(frame - cv2.GaussianBlur(frame, (0, 0), 1.5).reshape(frame.shape)).mean())


def temporal_change(clip: np.ndarray) -> float:
    """Mean absolute frame-to-frame change: all of it is flicker on a static shot."""
    return float(np.abs(np.diff(clip, axis=0)).mean())


def test_working_shape_keeps_the_aspect_and_leaves_small_plates_alone():
    assert working_shape(1080, 1920, 518) == (518, 921)
    assert working_shape(2160, 4096, 518) == (518, 982)
    assert working_shape(518, 1920, 518) is None and working_shape(120, 160, 518) is None
    assert stabilizer_settings()["working_size"] == STABILIZE_WORKING_SIZE == 518


def test_a_plate_larger_than_the_working_size_loses_its_flicker_and_keeps_its_fine_detail():
    """A static plate; depth and normals with fine relief at the plate's resolution (averaged away at
    the working size) under smooth flicker (a per-frame offset, a drifting ramp and tilt): the flows run
    at the working size, the result has the plate's size, the flicker goes and the relief stays (enlarging
    a working-size result would keep about a fifth of it; the plate-size path keeps 0.88-1.0 of it here,
    DIS's sub-pixel errors on the static plate blurring the neighbours' samples a little)."""
    rng = np.random.default_rng(7)
    plate = np.clip(cv2.GaussianBlur(rng.random((H, W, 3)).astype(np.float32), (0, 0), 1.5) * 2 - 0.5, 0, 1)
    texture = cv2.GaussianBlur(rng.standard_normal((H, W)).astype(np.float32), (0, 0), 0.7)
    truth = 1.0 + np.linspace(0.0, 1.0, W, dtype=np.float32)[None] + 0.05 * texture
    gy, gx = np.gradient(texture)  # relief of about 18 degrees
    relief = np.dstack([-gx, -gy, np.ones_like(gx)]).astype(np.float32)
    drift = np.cumsum(rng.normal(0, 0.03, (FRAMES, 3)), axis=0)
    ramp = np.linspace(-1.0, 1.0, W, dtype=np.float32)[None]
    depth = np.stack([truth + d[0] + 0.5 * d[1] * ramp for d in drift])
    tilted = np.stack([relief + np.array([d[1], d[2], 0.0], np.float32) for d in drift])
    normals = (tilted / np.linalg.norm(tilted, axis=3, keepdims=True)).transpose(0, 3, 1, 2)
    estimator = ShapeRecordingFlow()
    out_depth, out_normals = stabilise(
        np.repeat(plate[None], FRAMES, 0), depth, normals, estimator=estimator, working_size=WORKING
    )
    assert estimator.shapes == {(WORKING, W * WORKING // H)}
    assert out_depth.shape == (FRAMES, H, W) and out_normals.shape == (FRAMES, 3, H, W)
    np.testing.assert_allclose(np.linalg.norm(out_normals, axis=1), 1.0, atol=1e-6)
    assert temporal_change(out_depth) < 0.25 * temporal_change(depth)
    assert temporal_change(out_normals) < 0.25 * temporal_change(normals)
    for k in (0, FRAMES // 2, FRAMES - 1):
        kept = high_pass_energy(out_depth[k]) / high_pass_energy(depth[k])
        assert 0.85 <= kept <= 1.1, ("depth", k, kept)
        kept = high_pass_energy(out_normals[k].transpose(1, 2, 0)) / high_pass_energy(normals[k].transpose(1, 2, 0))
        assert 0.85 <= kept <= 1.1, ("normals", k, kept)


def test_plates_at_or_below_the_working_size_are_stabilised_at_their_own_size():
    shot = procedural_shot(frames=12, height=48, width=64)
    plate = shot.plate.transpose(0, 2, 3, 1)
    depth = add_depth_flicker(shot.inverse_depth, seed=3)[:, 0].astype(np.float64)
    normals = add_normal_flicker(shot.normals, seed=4).astype(np.float64)
    estimator = load_flow_estimator("dis", device=torch.device("cpu"))
    full = stabilise(plate, depth, normals, estimator=estimator, working_size=10_000)
    for size in (48, STABILIZE_WORKING_SIZE):  # at the plate's short side, and the default
        for got, expected in zip(stabilise(plate, depth, normals, estimator=estimator, working_size=size), full, strict=True):
            np.testing.assert_array_equal(got, expected)
