"""Small real EXR plate sequences for the pipeline tests (written through OpenImageIO)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bufferany_core.frames import write_exr

# the tiny models with random weights and short windows that the pipeline tests render with
TINY = dict(
    depth_model="video-depth-anything-tiny",
    normal_model="buffer-anytime-normal-tiny",
    weights="random",
    device="cpu",
    window=6, overlap=2, depth_processing_size=28, normal_processing_size=28,
)  # fmt: skip


def write_plate(folder: Path, frames, *, size=(40, 24), name="shot", alpha=False, pixel_aspect=1.0) -> str:
    """A moving gradient-and-disc plate `folder/name.####.exr` (scene-linear half RGB, `pixel_aspect`
    in its header); returns the pattern."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    for n in frames:
        t = 0.05 * n
        disc = ((x - width * (0.3 + 0.4 * np.sin(t)) ) ** 2 + (y - height / 2) ** 2) < (height / 4) ** 2
        base = 0.1 + 0.6 * x / width
        channels = {
            "R": base + 0.3 * disc,
            "G": 0.2 + 0.5 * y / height,
            "B": 0.5 - 0.3 * disc + 0.05 * np.cos(t),
        }
        if alpha:
            channels["A"] = np.ones_like(base)
        write_exr(folder / f"{name}.{n:04d}.exr", channels, half=list(channels),
                  metadata={"camera": "A001", "PixelAspectRatio": pixel_aspect})
    return str(folder / f"{name}.####.exr")
