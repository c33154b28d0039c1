"""Repairs that rewrite passes files in place (numpy/OpenImageIO side)."""

from __future__ import annotations

from pathlib import Path

from bufferany_core import conventions
from bufferany_core.frames import read_channels, read_info, write_exr


def rewrite_lossless(path: str | Path, *, compression: str = conventions.DEFAULT_COMPRESSION) -> None:
    """Rewrite `path` (atomically) with lossless `compression`, keeping its channels, their types,
    geometry and header."""
    info = read_info(path)
    pixels = read_channels(path, info.channels)  # (H, W, C)
    channels = {name: pixels[:, :, index] for index, name in enumerate(info.channels)}
    half = [name for name, kind in zip(info.channels, info.channel_formats, strict=True) if kind == "half"]
    write_exr(path, channels, like=info, compression=compression, half=half)
