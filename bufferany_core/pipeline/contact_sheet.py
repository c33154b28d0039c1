"""A contact sheet PNG of a render: plate, depth and normals side by side for a few frames.

    bufferany-contact-sheet OUTPUT_SEQUENCE --plate PLATE [-o sheet.png] [--count 4] [--tile-width 480]

Depth is shown on one grey ramp for the whole sheet (white = near for inverse depth, far for
distance), so flicker between frames is visible; normals as `0.5 * N + 0.5` in RGB.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from bufferany_core import __version__, conventions
from bufferany_core.atomic import atomic_write
from bufferany_core.cli_support import run_cli, say
from bufferany_core.conventions import HEADER
from bufferany_core.errors import (
    BadArgumentsError,
    InputNotFoundError,
    OutputNotWritableError,
)
from bufferany_core.frames import FrameSequence, read_channels, read_frames, read_info

PROG = "bufferany-contact-sheet"
LABEL_HEIGHT = 18
MIN_TILE_WIDTH = 240  # small plates are enlarged (nearest neighbour) so labels and detail stay readable
TILE_WIDTH = 480  # large plates are reduced (area filter) to this width per tile


def _spread(frames: list[int], count: int) -> list[int]:
    if count >= len(frames):
        return list(frames)
    return [frames[round(i * (len(frames) - 1) / max(count - 1, 1))] for i in range(count)]


def _label(image: np.ndarray, text: str) -> np.ndarray:
    bar = np.zeros((LABEL_HEIGHT, image.shape[1], 3), np.uint8)
    cv2.putText(bar, text, (4, LABEL_HEIGHT - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], axis=0)


def _to_bgr8(rgb: np.ndarray, *, pixel_aspect: float = 1.0, width: int = TILE_WIDTH) -> np.ndarray:
    """8-bit BGR tile shown with square pixels (the plate's pixel aspect applied to its width): small
    plates enlarged by whole factors (nearest), large ones reduced to `width` (area filter)."""
    image = (np.clip(rgb, 0.0, 1.0)[..., ::-1] * 255.0 + 0.5).astype(np.uint8)
    height, shown = image.shape[0], max(1, round(image.shape[1] * pixel_aspect))
    if shown > width:
        return cv2.resize(image, (width, max(1, round(height * width / shown))), interpolation=cv2.INTER_AREA)
    if shown != image.shape[1]:
        image = cv2.resize(image, (shown, height), interpolation=cv2.INTER_AREA if shown < image.shape[1] else cv2.INTER_NEAREST)
    factor = -(-MIN_TILE_WIDTH // image.shape[1])
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1) if factor > 1 else image


def make_contact_sheet(output: str, plate: str, sheet: str | Path, *, count: int = 4, tile_width: int = TILE_WIDTH) -> Path:
    """Write the sheet for the frames of `output` (an output sequence) that exist; returns its path."""
    if not cv2.haveImageWriter(str(sheet)):  # imwrite would raise cv2.error only after all the reading
        raise BadArgumentsError(f"contact sheet {sheet}: OpenCV cannot write this file type (use .png or .jpg)")
    passes = FrameSequence.for_output(output)
    if not passes.frames:
        raise InputNotFoundError(f"no rendered frames match {passes.hash_pattern}")
    plates = FrameSequence.from_input(plate)
    frames = _spread(passes.frames, count)
    info = read_info(passes.path(frames[0]))
    has_depth = conventions.DEPTH_CHANNEL in info.channels
    has_normals = set(conventions.NORMAL_CHANNELS) <= set(info.channels)
    depths = [read_channels(passes.path(n), [conventions.DEPTH_CHANNEL])[..., 0] for n in frames] if has_depth else []
    lo, hi = np.percentile(np.stack(depths), (1, 99)) if depths else (0.0, 1.0)
    tile = partial(_to_bgr8, pixel_aspect=info.pixel_aspect or 1.0, width=tile_width)
    rows = []
    for index, frame in enumerate(read_frames(plates, frames)):
        tiles = [_label(tile(frame.rgb), f"plate {frame.number}")]
        if has_depth:
            grey = (depths[index] - lo) / max(hi - lo, 1e-12)
            tiles.append(_label(tile(np.repeat(grey[..., None], 3, axis=2)), conventions.DEPTH_CHANNEL))
        if has_normals:
            normals = read_channels(passes.path(frame.number), conventions.NORMAL_CHANNELS)
            tiles.append(_label(tile(0.5 * normals + 0.5), conventions.NORMAL_LAYER))
        rows.append(np.concatenate(tiles, axis=1))
    image = np.concatenate(rows, axis=0)
    if info.metadata.get(HEADER.untrained):
        image = np.concatenate([_banner(image.shape[1], "UNTRAINED: random weights, passes mean nothing"), image], axis=0)
    path = Path(sheet)

    def write(temporary: Path) -> None:
        # cv2.imwrite reports an unwritable file by returning False, not raising.
        if not cv2.imwrite(str(temporary), image):
            raise OutputNotWritableError(f"cannot write the contact sheet {path}")

    atomic_write(path, write)
    return path


def _banner(width: int, text: str) -> np.ndarray:
    bar = np.zeros((LABEL_HEIGHT + 6, width, 3), np.uint8)
    bar[:] = (0, 0, 200)
    cv2.putText(bar, text, (4, LABEL_HEIGHT), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return bar


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("output", help="rendered sequence, e.g. out/shot_buffers.####.exr")
    parser.add_argument("--plate", required=True, help="the plate it was rendered from")
    parser.add_argument("-o", "--sheet", help="PNG to write (default: contact_sheet.png beside the output)")
    parser.add_argument("--count", type=int, default=4, help="frames on the sheet (default 4)")
    parser.add_argument("--tile-width", type=int, default=TILE_WIDTH, help=f"largest tile width in pixels (default {TILE_WIDTH})")
    ns = parser.parse_args(argv)

    def body() -> int:
        if ns.count < 1 or ns.tile_width < 16:
            raise BadArgumentsError(f"--count must be at least 1 and --tile-width at least 16, got {ns.count}, {ns.tile_width}")
        sheet = ns.sheet or Path(ns.output).parent / "contact_sheet.png"
        say(f"Contact sheet: {make_contact_sheet(ns.output, ns.plate, sheet, count=ns.count, tile_width=ns.tile_width)}")
        return 0

    return run_cli(PROG, body)


if __name__ == "__main__":
    sys.exit(main())
