"""Real EXR shots for the pyblish plugin tests: a plate, its passes with a full provenance header, and
helpers that plant one defect each (all written through bufferany_core.frames / OpenImageIO)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pyblish.api
import pyblish.plugin
import pyblish.util
from pipeline_plates import write_plate

from bufferany_core import conventions
from bufferany_core.conventions import HEADER
from bufferany_core.frames import read_channels, read_info, write_exr

REPO = Path(__file__).resolve().parents[1]
PLUGINS = REPO / "pyblish_plugins"
FRAMES = range(1001, 1009)
SIZE = (40, 24)


def provenance(*, untrained: bool = False) -> dict[str, object]:
    return {
        HEADER.version: "0.1.0",
        HEADER.passes: "depth,normal",
        HEADER.source: "shot.####.exr",
        HEADER.untrained: int(untrained),
        HEADER.weights_sha256: "depth:" + "a" * 64 + ";normal:" + "b" * 64,
        HEADER.depth_model: "video-depth-anything-small",
        HEADER.depth_convention: "inverse",
        HEADER.normal_model: "buffer-anytime-normal",
        HEADER.normal_space: "camera",
        HEADER.normal_axes: conventions.NORMAL_AXES,
        HEADER.frame_range: f"{FRAMES[0]}-{FRAMES[-1]}",
    }


def clean_passes(frame: int, size=SIZE) -> dict[str, np.ndarray]:
    """Smoothly moving inverse depth and unit normals for `frame` (steady motion: no flicker)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = frame - FRAMES[0]
    depth = 1.0 + 0.5 * x / width + 0.3 * y / height + 0.01 * t
    normal = np.stack([0.2 * x / width + 0.01 * t, 0.3 * y / height - 0.1, np.ones_like(x)])  # (3, H, W)
    normal /= np.linalg.norm(normal, axis=0, keepdims=True)
    return {conventions.DEPTH_CHANNEL: depth, **dict(zip(conventions.NORMAL_CHANNELS, normal, strict=True))}


def write_passes(path: Path, channels, *, like, metadata=None, half=conventions.NORMAL_CHANNELS) -> None:
    header = provenance() if metadata is None else metadata
    write_exr(path, channels, like=like, metadata=header, half=[name for name in half if name in channels])


def make_shot(folder: Path) -> Path:
    """`folder/shot.####.exr` (plate) and `folder/shot_buffers.####.exr` (clean passes); returns folder."""
    write_plate(folder, FRAMES, size=SIZE)
    for frame in FRAMES:
        like = read_info(folder / f"shot.{frame}.exr")
        write_passes(passes_file(folder, frame), clean_passes(frame), like=like)
    return folder


def passes_file(folder: Path, frame: int) -> Path:
    return folder / f"shot_buffers.{frame}.exr"


def rewrite(path: Path, *, drop=(), change=None, like_changes=None, metadata=None, half=None) -> None:
    """Rewrite a passes file: without the `drop` channels, `change(channels)` applied, the geometry
    of `like` changed by `like_changes`, another header, other half channels."""
    info = read_info(path)
    pixels = read_channels(path, info.channels)
    channels = {name: pixels[:, :, i] for i, name in enumerate(info.channels) if name not in drop}
    if change is not None:
        change(channels)
    like = dataclasses.replace(info, metadata={}, metadata_types={}, **(like_changes or {}))
    header = {k: v for k, v in info.metadata.items() if k.startswith(conventions.HEADER_PREFIX)}
    half_names = [n for n, f in zip(info.channels, info.channel_formats, strict=True) if f == "half"]
    write_exr(
        path,
        channels,
        like=like,
        metadata=header if metadata is None else metadata,
        half=[n for n in (half_names if half is None else half) if n in channels],
    )


def recompress(path: Path, compression: str) -> None:
    """Rewrite `path` with any OpenImageIO compression (write_exr refuses lossy ones on purpose)."""
    buf = oiio.ImageBuf(str(path))
    buf.specmod().attribute("compression", compression)
    assert buf.write(str(path)), buf.geterror()


def reset_pyblish() -> None:
    """Forget every registered path, plugin and host (pyblish keeps them process-wide)."""
    pyblish.api.deregister_all_paths()
    pyblish.api.deregister_all_plugins()
    pyblish.api.deregister_all_hosts()


def discover_plugins(*hosts: str) -> list:
    """The plugins as a studio gets them: discovered on the documented plugin path, for `hosts`."""
    reset_pyblish()
    for host in hosts:
        pyblish.api.register_host(host)
    return pyblish.plugin.discover(paths=[str(PLUGINS)])


def publish(plugins, folder: Path, root: Path | None = None, **context_data):
    context = pyblish.api.Context()
    context.data["bufferanyFolder"] = str(folder)
    if root is not None:
        context.data["publishRoot"] = str(root)
    context.data.update(context_data)
    pyblish.util.publish(context, plugins=plugins)
    return context


def errors(context) -> dict[str, str]:
    """Plugin class name -> error message, for each plugin that failed."""
    return {r["plugin"].__name__: str(r["error"]) for r in context.data["results"] if r["error"] is not None}
