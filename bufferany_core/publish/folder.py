"""Find plates and their passes in a folder: from a `bufferany_publish.json` manifest, or every image
sequence or movie in the folder with its `<name>_buffers.####.exr` beside it (numpy/OpenImageIO side:
plate headers are read for the resolution)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from bufferany_core import conventions
from bufferany_core.errors import BadArgumentsError, BufferanyError, InputNotFoundError
from bufferany_core.frames import (
    FrameSequence,
    is_movie_path,
    output_sequence_for,
    parse_frame_spec,
)
from bufferany_core.jobs import PASSES
from bufferany_core.publish import instances as keys
from bufferany_core.publish.checks import PlateHeaders

MANIFEST = "bufferany_publish.json"
IMAGE_EXTENSIONS = (".exr", ".dpx", ".tif", ".tiff", ".png", ".jpg", ".jpeg")
_NUMBERED = re.compile(r"^(?P<head>.*?)(?P<digits>\d+)(?P<tail>\.[^.]+)$")


def shots_in(folder: str | Path) -> list[dict[str, Any]]:
    """Instance data (name plus the `instances` keys) for each plate in `folder`."""
    folder = Path(folder).expanduser().absolute()
    if not folder.is_dir():
        raise InputNotFoundError(f"publish folder {folder} does not exist")
    manifest = folder / MANIFEST
    if manifest.is_file():
        return _from_manifest(manifest)
    return [_shot(folder, plate, {}) for plate in _plates(folder)]


def _from_manifest(path: Path) -> list[dict[str, Any]]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise BadArgumentsError(f"cannot read manifest {path}: {error}") from error
    shots = data.get("shots") if isinstance(data, dict) else None
    if not isinstance(shots, list) or not all(isinstance(shot, dict) and "plate" in shot for shot in shots):
        raise BadArgumentsError(f"manifest {path}: 'shots' must be a list of objects, each with a 'plate'")
    defaults = data.get("defaults", {})
    return [_shot(path.parent, shot["plate"], {**defaults, **shot}, manifest=path) for shot in shots]


def _plates(folder: Path) -> list[str]:
    """One pattern per sequence (and each movie) in `folder`, passes sequences left out."""
    found: set[str] = set()
    for name in sorted(os.listdir(folder)):
        if name.startswith("."):
            continue
        if is_movie_path(Path(name)):
            found.add(str(folder / name))
            continue
        match = _NUMBERED.match(name)
        if match is None or match["tail"].lower() not in IMAGE_EXTENSIONS:
            continue
        if match["head"].rstrip("._-").endswith(conventions.OUTPUT_SUFFIX):
            continue
        found.add(str(folder / f"{match['head']}{'#' * len(match['digits'])}{match['tail']}"))
    return sorted(found)


def _shot(
    folder: Path, plate: str, fields: dict[str, Any], *, manifest: Path | None = None
) -> dict[str, Any]:
    where = f"manifest {manifest}" if manifest else f"folder {folder}"
    plate_path = str(folder / plate)
    try:
        sequence = FrameSequence.from_input(plate_path)
    except BufferanyError as error:
        raise type(error)(f"{where}: {error}") from error
    output = fields.get("output")
    output = str(folder / output) if output else output_sequence_for(sequence).hash_pattern
    frames = parse_frame_spec(fields["frames"]) if "frames" in fields else sequence.frames
    if frames != list(range(frames[0], frames[-1] + 1)):
        raise BadArgumentsError(
            f"{where}: frames {fields.get('frames')!r} of {plate} must be one range, first-last"
        )
    info = PlateHeaders(plate_path).info(frames[0])
    stem = Path(str(sequence.movie)).stem if sequence.is_movie else sequence.head.rstrip("._-")
    name = fields.get("name") or stem or "plate"
    extra = {k: v for k, v in fields.items() if k not in ("plate", "output", "frames", "name")}
    return {
        "name": name,
        keys.PLATE: sequence.hash_pattern,
        keys.OUTPUT: output,
        keys.FRAME_START: frames[0],
        keys.FRAME_END: frames[-1],
        keys.PASSES: list(fields.get("passes", PASSES)),
        keys.RESOLUTION: [info.width, info.height],
        keys.PIXEL_ASPECT: info.pixel_aspect,
        "source": str(manifest or sequence.hash_pattern),
        **extra,
    }
