"""Synthetic unlabeled clips for the training tests: a textured background panning under a camera
and a textured square moving the other way (occlusions), as scene-linear EXR sequences."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest
import torch
from frames_util import write_image


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread: on a shared 2-core machine, two spinning OpenMP threads per process make
    these small models many times slower. Import this fixture into a test module to use it."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_normal_config(**overrides):
    """`normal.toml` on the tiny random-weight normal model and 4-frame 32x48 clips, plain (no
    augmentation, no workers), with `overrides` (dotted keys) on top."""
    from bufferany_training.config import load_config

    settings = {
        "model.name": "buffer-anytime-normal-tiny",
        "model.weights": "random:0",
        "data.frames": 4,
        "data.size": [32, 48],
        "data.scale": [1.0, 1.0],
        "data.flip": False,
        "data.strides": [1],
        "data.workers": 0,
        "run.decode_chunk": 2,
    }
    return load_config(Path("normal.toml"), [], {**settings, **overrides})


def texture(height: int, width: int, *, seed: int) -> np.ndarray:
    """Smooth random colour texture (H, W, 3) in [0, 1], with detail at several scales for the flow."""
    rng = np.random.default_rng(seed)
    out = np.zeros((height, width, 3))
    for cells in (4, 9, 23):
        coarse = rng.random((cells, cells, 3))
        ys = np.linspace(0, cells - 1, height)
        xs = np.linspace(0, cells - 1, width)
        y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
        y1, x1 = np.minimum(y0 + 1, cells - 1), np.minimum(x0 + 1, cells - 1)
        fy, fx = (ys - y0)[:, None, None], (xs - x0)[None, :, None]
        top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x1] * fx
        bottom = coarse[y1][:, x0] * (1 - fx) + coarse[y1][:, x1] * fx
        out += top * (1 - fy) + bottom * fy
    return out / 3.0


def write_moving_clip(
    folder: Path, *, frames: int = 8, size: tuple[int, int] = (56, 84), speed: int = 2, seed: int = 0
) -> Path:
    """`folder/shot.####.exr`, frames 1001...; returns the folder. size = (height, width)."""
    height, width = size
    folder.mkdir(parents=True, exist_ok=True)
    background = texture(height, width + speed * frames, seed=seed)
    square = texture(height // 2, width // 3, seed=seed + 1)
    for k in range(frames):
        srgb = background[:, speed * k : speed * k + width].copy()
        top, left = height // 4, width // 6 + 2 * speed * k
        srgb[top : top + square.shape[0], left : left + square.shape[1]] = square[:, : max(0, width - left)]
        linear = np.power(srgb, 2.2).astype(np.float32)  # the plate is scene-linear
        write_image(folder / f"shot.{1001 + k:04d}.exr", linear, fmt="half")
    return folder


def train_fixed_clip(task, clips: Path, config, *, lr: float, steps: int) -> tuple[list[float], dict]:
    """`steps` optimiser steps of `task` on the first sample of `clips`, again and again (only the
    model changes between steps). Returns each step's total loss and the last step's metrics."""
    from bufferany_training.data import ClipDataset, collate_clips, discover_clips

    dataset = ClipDataset(discover_clips(clips), config.data, seed=0, with_flows=True)
    batch = collate_clips([dataset[0]])
    task.train_mode()
    optimizer = torch.optim.AdamW(task.trainable_parameters(), lr=lr)
    totals = []
    for _ in range(steps):
        metrics = task.step(task.objective, batch, amp=contextlib.nullcontext, log=True)
        optimizer.step()
        optimizer.zero_grad()
        totals.append(float(metrics["loss/total"]))
    return totals, metrics
