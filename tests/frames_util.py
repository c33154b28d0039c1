"""Writes test images with OpenImageIO directly, independently of the writer under test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio


def write_image(
    path: Path,
    pixels: np.ndarray,
    channels: tuple[str, ...] = ("R", "G", "B"),
    *,
    fmt: str = "half",
    origin: tuple[int, int] = (0, 0),
    display: tuple[int, int, int, int] | None = None,
    attributes: dict[str, tuple[str, object]] | None = None,
) -> Path:
    """`pixels` (H, W, C) into `path` (format from the extension); attributes: name -> (type, value)."""
    height, width, count = pixels.shape
    spec = oiio.ImageSpec(width, height, count, fmt)
    spec.channelnames = channels
    spec.x, spec.y = origin
    if display is not None:
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = display
    for name, (kind, value) in (attributes or {}).items():
        spec.attribute(name, oiio.TypeDesc(kind), value)
    output = oiio.ImageOutput.create(str(path))
    assert output is not None and output.open(str(path), spec), oiio.geterror()
    assert output.write_image(np.ascontiguousarray(pixels)), output.geterror()
    output.close()
    return path


def write_parts(path: Path, parts: list[tuple[str, tuple[str, ...], np.ndarray]]) -> Path:
    """A multi-part EXR: one (part name, channel names, (H, W, C) float pixels) per part."""
    specs = []
    for name, channels, pixels in parts:
        height, width, count = pixels.shape
        spec = oiio.ImageSpec(width, height, count, "float")
        spec.channelnames = channels
        spec.attribute("oiio:subimagename", name)
        specs.append(spec)
    output = oiio.ImageOutput.create(str(path))
    assert output.open(str(path), specs), output.geterror()
    for index, (spec, (_, _, pixels)) in enumerate(zip(specs, parts, strict=True)):
        if index:
            assert output.open(str(path), spec, "AppendSubimage"), output.geterror()
        assert output.write_image(np.ascontiguousarray(pixels, dtype=np.float32)), output.geterror()
    output.close()
    return path


def write_sequence(folder: Path, name: str, frames, *, size=(8, 6), value: float = 0.25) -> list[Path]:
    """`name` holds `{frame}` (already padded by the caller's format spec), e.g. "shot.{frame:04d}.exr"."""
    width, height = size
    paths = []
    for frame in frames:
        pixels = np.full((height, width, 3), value, dtype=np.float32)
        pixels[0, 0] = frame / 10000.0  # tells frames apart
        paths.append(write_image(folder / name.format(frame=frame), pixels))
    return paths
