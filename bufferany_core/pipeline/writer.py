"""One output frame: the passes as AOV channels, the plate's geometry, and the provenance header."""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bufferany_core import __version__, conventions
from bufferany_core.atomic import writing_outputs
from bufferany_core.conventions import HEADER
from bufferany_core.errors import BufferanyError
from bufferany_core.frames import ImageInfo, read_channels, read_info, write_exr
from bufferany_core.pipeline.align import DISTANCE_RULE, inverse_to_distance, renormalise


@dataclass(frozen=True)
class Provenance:
    """What every output header records (`bufferany/*` keys from `conventions.HEADER`)."""

    passes: tuple[str, ...]
    depth_convention: str
    models: Mapping[str, str]  # pass -> model id
    weights: Mapping[str, str]  # pass -> sha256, or "random:SEED"
    untrained: bool
    frame_range: str
    shot_range: str
    input_colorspace: str
    stabilized: Mapping[str, tuple[bool, str]]  # pass -> (went through the stabiliser, why)
    source: str
    settings: str  # fingerprint of everything that changes the pixels (see `fingerprint`)
    temporal_weights: Mapping[str, str] = field(default_factory=dict)  # pass -> sha256 of trained temporal layers
    precision: str = "fp32"  # the float type the models ran in (fp16/bf16: CUDA autocast)
    stabilize_mode: str = "auto"  # the job's --stabilize
    settings_values: str = ""  # the fingerprinted settings as JSON (`settings_json`), so a re-run can name what differs

    def header(self) -> dict[str, object]:
        meta: dict[str, object] = {
            HEADER.version: __version__,
            HEADER.passes: ",".join(self.passes),
            HEADER.untrained: int(self.untrained),
            HEADER.frame_range: self.frame_range,
            HEADER.shot_range: self.shot_range,
            HEADER.input_colorspace: self.input_colorspace,
            HEADER.stabilized: int(any(done for done, _ in self.stabilized.values())),
            HEADER.stabilize_mode: self.stabilize_mode,
            HEADER.source: self.source,
            HEADER.weights_sha256: ";".join(f"{p}:{self.weights[p]}" for p in self.passes),
            HEADER.settings: self.settings,
            HEADER.precision: self.precision,
        }
        if self.settings_values:
            meta[HEADER.settings_values] = self.settings_values
        for pass_name, (done, reason) in self.stabilized.items():
            meta[HEADER.pass_stabilized(pass_name)] = int(done)
            meta[HEADER.pass_stabilize_reason(pass_name)] = reason
        if self.temporal_weights:
            meta[HEADER.temporal_weights_sha256] = ";".join(f"{p}:{sha}" for p, sha in self.temporal_weights.items())
        if "depth" in self.passes:
            meta[HEADER.depth_model] = self.models["depth"]
            meta[HEADER.depth_convention] = self.depth_convention
            if self.depth_convention == conventions.DepthConvention.DISTANCE.value:
                meta[HEADER.depth_rule] = DISTANCE_RULE
        if "normal" in self.passes:
            meta[HEADER.normal_model] = self.models["normal"]
            meta[HEADER.normal_space] = conventions.DEFAULT_NORMAL_SPACE.value
            meta[HEADER.normal_axes] = conventions.NORMAL_AXES
        return meta


def settings_json(settings: Mapping[str, object]) -> str:
    """The settings as the canonical JSON text that is fingerprinted and recorded in the header."""
    return json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))


def fingerprint(settings: Mapping[str, object]) -> str:
    """Short stable hash of the settings that decide a frame's pixels: a re-run skips a frame only
    when its file carries the same one."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FrameState(enum.Enum):
    MISSING = "missing"
    FINISHED = "finished"  # complete, with the same settings
    DIFFERENT = "different"  # complete, from other settings
    BROKEN = "broken"  # exists but its header or pixels cannot be read (rendered again)


@dataclass(frozen=True)
class ExistingFrame:
    state: FrameState
    settings: str | None = None  # the fingerprint it records
    values: dict | None = None  # the settings it records (None: rendered before they were recorded)


def frame_state(path: Path, settings: str, *, check_pixels: bool = True) -> ExistingFrame:
    """What is at `path`: nothing, a finished frame of these settings (header and, with `check_pixels`,
    every channel readable), a frame from other settings, or a file that cannot be read."""
    if not path.is_file():
        return ExistingFrame(FrameState.MISSING)
    try:
        info = read_info(path)
        recorded = info.metadata.get(HEADER.settings)
        if check_pixels:
            read_channels(path, list(info.channels))
    except BufferanyError:
        return ExistingFrame(FrameState.BROKEN)
    if recorded is None:  # not one of ours: never replaced without --overwrite
        return ExistingFrame(FrameState.DIFFERENT, None, None)
    if recorded == settings:
        return ExistingFrame(FrameState.FINISHED, recorded)
    try:
        values = json.loads(str(info.metadata.get(HEADER.settings_values, "")))
    except ValueError:
        values = None
    return ExistingFrame(FrameState.DIFFERENT, str(recorded), values if isinstance(values, dict) else None)


def settings_differences(ours: Mapping[str, object], theirs: Mapping[str, object] | None) -> list[str]:
    """The settings that differ, as `name: theirs -> ours` (theirs None: recorded by an older version)."""
    if theirs is None:
        return ["settings not recorded (written by an earlier version or another program)"]
    out = []
    for name in sorted(set(ours) | set(theirs)):
        a, b = theirs.get(name, _DEFAULT), ours.get(name, _DEFAULT)
        if _short(a) != _short(b):
            out.append(f"{name}: {_short(a)} -> {_short(b)}")
    return out or ["the fingerprint differs"]


_DEFAULT = object()  # a setting left at its default is not recorded


def _short(value: object) -> str:
    if value is _DEFAULT:
        return "(default)"
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def is_finished(path: Path, settings: str) -> bool:
    """Whether `path` is a complete output written with the same settings (header and pixels readable)."""
    return frame_state(path, settings).state is FrameState.FINISHED


@dataclass(frozen=True)
class PreparedFrame:
    """An output frame's channels and header, ready for the file (`prepare_frame`)."""

    channels: dict[str, np.ndarray]
    half: list[str]
    metadata: dict[str, object]


def pass_channels(
    *,
    depth: np.ndarray | None = None,  # (H, W), in the convention it is to be stored in
    normals: np.ndarray | None = None,  # (3, H, W), made unit here
    plate: np.ndarray | None = None,  # (H, W, 4) RGBA
) -> tuple[dict[str, np.ndarray], list[str]]:
    """Output channels (float32) and the names of those stored as half."""
    channels: dict[str, np.ndarray] = {}
    half: list[str] = []
    if depth is not None:
        channels[conventions.DEPTH_CHANNEL] = depth.astype(np.float32)
    if normals is not None:
        unit = renormalise(normals, axis=0, dtype=np.float32)
        for name, component in zip(conventions.NORMAL_CHANNELS, unit, strict=True):
            channels[name] = component
        if conventions.DEFAULT_NORMAL_PRECISION == conventions.NormalPrecision.HALF:
            half += list(conventions.NORMAL_CHANNELS)
    if plate is not None:
        for index, name in enumerate(conventions.PLATE_CHANNELS):
            channels[name] = plate[..., index]
        half += list(conventions.PLATE_CHANNELS)
    return channels, half


def with_depth_range(metadata: dict[str, Any], channels: dict[str, np.ndarray]) -> dict[str, Any]:
    """`metadata` plus this frame's depth range, where it has depth to describe."""
    if conventions.DEPTH_CHANNEL in channels:
        described = depth_range(channels[conventions.DEPTH_CHANNEL])
        if described is not None:
            metadata[HEADER.depth_range] = described
    return metadata


def prepare_frame(
    *,
    provenance: Provenance,
    depth: np.ndarray | None = None,  # (H, W) shot-relative inverse depth
    normals: np.ndarray | None = None,  # (3, H, W) cross-faded normals, renormalised here
    plate: np.ndarray | None = None,  # (H, W, 4) RGBA
) -> PreparedFrame:
    """The passes as output channels (depth convention applied, normals unit, types chosen) and the
    header: the arithmetic of writing a frame, apart from the file, so frames can be prepared at once
    and still be written in order."""
    if depth is not None and provenance.depth_convention == conventions.DepthConvention.DISTANCE.value:
        depth = inverse_to_distance(depth)
    channels, half = pass_channels(depth=depth, normals=normals, plate=plate)
    return PreparedFrame(channels=channels, half=half, metadata=with_depth_range(provenance.header(), channels))


def write_prepared(path: Path, frame: PreparedFrame, *, like: ImageInfo) -> None:
    with writing_outputs():  # confined to the server's allowed roots when it runs the job
        write_exr(path, frame.channels, like=like, metadata=frame.metadata, half=frame.half)


def write_frame(
    path: Path,
    *,
    like: ImageInfo,
    provenance: Provenance,
    depth: np.ndarray | None = None,  # (H, W) shot-relative inverse depth
    normals: np.ndarray | None = None,  # (3, H, W) cross-faded normals, renormalised here
    plate: np.ndarray | None = None,  # (H, W, 4) RGBA
) -> None:
    write_prepared(path, prepare_frame(provenance=provenance, depth=depth, normals=normals, plate=plate), like=like)


def depth_range(depth: np.ndarray) -> str | None:
    """`bufferany/depth_range` of a frame: percentiles 1 and 99, min and max of its finite values, as
    JSON (None when it has none)."""
    values = depth[np.isfinite(depth)]
    if values.size == 0:
        return None
    p01, p99 = np.percentile(values, [1.0, 99.0])
    numbers = {"p01": p01, "p99": p99, "min": values.min(), "max": values.max()}
    return json.dumps({name: float(value) for name, value in numbers.items()}, sort_keys=True)
