"""Images in and EXR out through OpenImageIO.

Reading works for any file OpenImageIO reads (EXR, DPX, TIFF, PNG, JPEG, ...), single- or multi-part,
channels looked up by name. Writing makes EXR files that keep a plate's geometry (data window,
display window, pixel aspect) and metadata, with lossless compression only, atomically: a temporary
file in the destination folder, flushed to disk, then renamed over the destination.
"""

from __future__ import annotations

import contextlib
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import OpenImageIO as oiio

from bufferany_core import conventions
from bufferany_core.atomic import atomic_write
from bufferany_core.errors import (
    BadArgumentsError,
    InputNotFoundError,
    OutputNotWritableError,
    UnreadableImageError,
)

Window = tuple[int, int, int, int]  # x, y, width, height
_NARROW_INTEGERS = frozenset({"uint8", "int8", "uint16", "int16", "uint"})

# Attributes that describe a file's encoding, not the shot: never copied from a plate to an output.
_ENCODING_PREFIXES = ("oiio:", "openexr:", "png:", "jpeg:", "tiff:", "dpx:")
_ENCODING_NAMES = frozenset(
    {
        "compression",
        "PixelAspectRatio",
        "DateTime",
        "ICCProfile",
        "planarconfig",
        "Orientation",
        "XResolution",
        "YResolution",
        "ResolutionUnit",
        "name",
        "type",
        "version",
        "chunkCount",
        "tiles",
    }
)


@dataclass(frozen=True)
class ImageInfo:
    """Geometry, channels and shot metadata of an image (of its first part for multi-part files)."""

    width: int  # of the data window
    height: int
    data_window: Window
    display_window: Window
    pixel_aspect: float
    channels: tuple[str, ...]  # of all parts, in file order
    channel_formats: tuple[str, ...]  # "half", "float", "uint8", ... one per channel
    metadata: dict[str, object] = field(default_factory=dict)  # shot metadata, minus oiio:* and encoding
    subimages: int = 1
    metadata_types: dict[str, str] = field(default_factory=dict, repr=False)  # OIIO type of each value
    file_format: str = ""  # OIIO's format name: "openexr", "png", ...

    @classmethod
    def for_size(
        cls,
        width: int,
        height: int,
        *,
        metadata: Mapping[str, object] | None = None,
        metadata_types: Mapping[str, str] | None = None,
    ) -> ImageInfo:
        """An 8-bit RGB image of `width` x `height`, no overscan, square pixels (movie frames)."""
        return cls(
            width=width,
            height=height,
            data_window=(0, 0, width, height),
            display_window=(0, 0, width, height),
            pixel_aspect=1.0,
            channels=("R", "G", "B"),
            channel_formats=("uint8",) * 3,
            metadata=dict(metadata or {}),
            metadata_types=dict(metadata_types or {}),
        )

    @property
    def is_float(self) -> bool:
        """Whether the colour channels hold float data (scene-linear by convention)."""
        return any(fmt in ("half", "float", "double") for fmt in self.channel_formats[:3])


# --- reading ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def _open(path: str | Path) -> Iterator[oiio.ImageInput]:
    path = Path(path)
    if not path.is_file():
        raise InputNotFoundError(f"image {path} does not exist")
    image = oiio.ImageInput.open(str(path))
    if image is None:
        raise UnreadableImageError(f"cannot read image {path}: {oiio.geterror() or 'unknown format'}")
    try:
        yield image
    finally:
        image.close()


def _part_specs(image: oiio.ImageInput) -> list[oiio.ImageSpec]:
    specs: list[oiio.ImageSpec] = []
    while image.seek_subimage(len(specs), 0):
        specs.append(image.spec())
    return specs


def _info_from_specs(specs: list[oiio.ImageSpec], file_format: str) -> ImageInfo:
    spec = specs[0]
    metadata: dict[str, object] = {}
    types: dict[str, str] = {}
    for attribute in spec.extra_attribs:
        if attribute.name in _ENCODING_NAMES or attribute.name.startswith(_ENCODING_PREFIXES):
            continue
        metadata[attribute.name] = attribute.value
        types[attribute.name] = str(attribute.type)
    channels = tuple(name for part in specs for name in part.channelnames)
    formats = tuple(str(part.channelformat(index)) for part in specs for index in range(part.nchannels))
    return ImageInfo(
        width=spec.width,
        height=spec.height,
        data_window=(spec.x, spec.y, spec.width, spec.height),
        display_window=(spec.full_x, spec.full_y, spec.full_width, spec.full_height),
        pixel_aspect=float(spec.get_float_attribute("PixelAspectRatio", 1.0)),
        channels=channels,
        channel_formats=formats,
        metadata=metadata,
        subimages=len(specs),
        metadata_types=types,
        file_format=file_format,
    )


def read_info(path: str | Path) -> ImageInfo:
    """Header only: geometry, channels and metadata of `path`."""
    with _open(path) as image:
        return _info_from_specs(_part_specs(image), image.format_name())


def _read_channels(
    image: oiio.ImageInput,
    path: Path,
    specs: list[oiio.ImageSpec],
    names: Sequence[str],
    subimage: int | None,
    fmt: str = "float",
) -> np.ndarray:
    if subimage is not None and not 0 <= subimage < len(specs):
        raise BadArgumentsError(f"{path} has {len(specs)} part(s); there is no part {subimage}")
    searched = range(len(specs)) if subimage is None else [subimage]
    where: dict[str, tuple[int, int]] = {}  # channel -> (part, index); the first part holding it wins
    for part in searched:
        for index, name in enumerate(specs[part].channelnames):
            where.setdefault(name, (part, index))
    missing = [name for name in names if name not in where]
    if missing:
        available = ", ".join(name for part in searched for name in specs[part].channelnames)
        raise UnreadableImageError(f"{path} has no channel {', '.join(missing)} (it has: {available})")
    parts = sorted({where[name][0] for name in names})
    shapes = {(specs[part].height, specs[part].width) for part in parts}
    if len(shapes) > 1:
        raise UnreadableImageError(f"{path}: channels {', '.join(names)} sit in parts of different sizes")
    height, width = shapes.pop()
    dtype = np.float16 if fmt == "half" else np.float32
    out = np.empty((height, width, len(names)), dtype=dtype)  # (H, W, C) over the data window
    for part in parts:
        wanted = [(slot, where[name][1]) for slot, name in enumerate(names) if where[name][0] == part]
        first = min(index for _, index in wanted)
        last = max(index for _, index in wanted) + 1
        pixels = image.read_image(part, 0, first, last, fmt)
        if pixels is None or image.has_error:
            raise UnreadableImageError(f"cannot read pixels of {path}: {image.geterror() or 'read failed'}")
        pixels = np.asarray(pixels).reshape(height, width, last - first)
        if len(parts) == 1 and [index for _, index in wanted] == list(range(first, last)):
            return pixels  # already the channels asked for, in order (the usual R, G, B)
        for slot, index in wanted:
            out[:, :, slot] = pixels[:, :, index - first]
    return out


def read_channels(path: str | Path, names: Sequence[str], *, subimage: int | None = None) -> np.ndarray:
    """Channels `names` of `path` as (H, W, len(names)) float32 over the data window.

    With `subimage` None, every part of a multi-part file is searched (the first part holding a
    name wins). UnreadableImageError names the file, and the channels it has when one is missing.
    """
    path = Path(path)
    with _open(path) as image:
        return _read_channels(image, path, _part_specs(image), names, subimage)


def colour_channels(info: ImageInfo, path: str | Path) -> tuple[str, ...]:
    """The channels a plate's colour is read from: R, G, B, or a grey Y. UnreadableImageError if
    `path` (described by `info`) has neither."""
    if {"R", "G", "B"} <= set(info.channels):
        return ("R", "G", "B")
    if "Y" in info.channels:
        return ("Y",)
    raise UnreadableImageError(f"{path} has no R, G, B or Y channels (it has: {', '.join(info.channels)})")


def read_rgb(path: str | Path, *, keep_half: bool = False) -> tuple[np.ndarray, ImageInfo]:
    """Colour of `path` as (H, W, 3) float32 (R, G, B by name, or a grey Y repeated; alpha is
    ignored) and its ImageInfo. `keep_half`: colour stored as half comes back as float16, as stored
    (no conversion, half the memory)."""
    path = Path(path)
    with _open(path) as image:
        specs = _part_specs(image)
        info = _info_from_specs(specs, image.format_name())
        names = colour_channels(info, path)
        stored = {info.channel_formats[info.channels.index(name)] for name in names}
        fmt = "half" if keep_half and stored == {"half"} else "float"
        pixels = _read_channels(image, path, specs, names, None, fmt)
    return np.broadcast_to(pixels, (*pixels.shape[:2], 3)).copy() if pixels.shape[2] == 1 else pixels, info


# --- writing ---------------------------------------------------------------------------------------
Part = tuple[str, Mapping[str, np.ndarray]]  # part name, channels


def write_exr(
    path: str | Path,
    channels: Mapping[str, np.ndarray],
    *,
    like: ImageInfo | None = None,
    metadata: Mapping[str, object] | None = None,
    compression: str = conventions.DEFAULT_COMPRESSION,
    half: Iterable[str] = (),
) -> None:
    """Write `channels` (name -> (H, W) array over the data window) to a single-part EXR, atomically.

    Channels are float32 unless named in `half`. `like` (usually the plate's ImageInfo) gives the
    data window, display window, pixel aspect and metadata; `metadata` is added on top of it.
    """
    write_exr_parts(path, [("", channels)], like=like, metadata=metadata, compression=compression, half=half)


def write_exr_parts(
    path: str | Path,
    parts: Sequence[Part],
    *,
    like: ImageInfo | None = None,
    metadata: Mapping[str, object] | None = None,
    compression: str = conventions.DEFAULT_COMPRESSION,
    half: Iterable[str] = (),
) -> None:
    """Write a multi-part EXR (one part per (name, channels) pair; same options as `write_exr`, the
    metadata goes into every part). A single part with an empty name makes a plain single-part file."""
    path = Path(path)
    if path.suffix.lower() != ".exr":
        raise BadArgumentsError(f"output {path} must end in .exr")
    if compression.lower() not in conventions.LOSSLESS_COMPRESSIONS:
        raise BadArgumentsError(
            f"compression {compression!r} for {path} is not lossless; data passes need one of "
            f"{', '.join(conventions.LOSSLESS_COMPRESSIONS)}"
        )
    if not parts:
        raise BadArgumentsError(f"nothing to write to {path}: no parts")
    half = set(half)
    all_names = {name for _, channels in parts for name in channels}
    if half - all_names:
        raise BadArgumentsError(f"half channels {sorted(half - all_names)} are not written to {path}")
    if len(parts) > 1 and len({name for name, _ in parts}) != len(parts):
        raise BadArgumentsError(f"part names of {path} must be distinct and non-empty")
    extra = _typed_metadata(like, metadata)
    specs, pixels = [], []
    for part_name, channels in parts:
        spec, data = _part_spec(path, part_name, channels, like, compression.lower(), half, extra)
        specs.append(spec)
        pixels.append(data)
    atomic_write(path, lambda temporary: _write_parts(temporary, path, specs, pixels))


def _typed_metadata(
    like: ImageInfo | None, metadata: Mapping[str, object] | None
) -> dict[str, tuple[oiio.TypeDesc, object]]:
    typed: dict[str, tuple[oiio.TypeDesc, object]] = {}
    if like is not None:
        for name, value in like.metadata.items():
            kind = like.metadata_types.get(name)
            if kind in _NARROW_INTEGERS:  # EXR headers hold 32-bit ints only; OIIO would drop these
                kind = "int"
            typed[name] = (oiio.TypeDesc(kind), value) if kind else _infer_type(name, value)
    for name, value in (metadata or {}).items():
        typed[name] = _infer_type(name, value)
    return typed


def _infer_type(name: str, value: object) -> tuple[oiio.TypeDesc, object]:
    if isinstance(value, str):
        return oiio.TypeDesc("string"), value
    if isinstance(value, (bool, numbers.Integral)):
        return oiio.TypeDesc("int"), int(value)
    if isinstance(value, numbers.Real):
        return oiio.TypeDesc("float"), float(value)
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, numbers.Real) for v in value):
        return oiio.TypeDesc(f"float[{len(value)}]"), tuple(float(v) for v in value)
    raise BadArgumentsError(f"metadata {name!r}: cannot store a {type(value).__name__} in an EXR header")


def _part_spec(
    path: Path,
    part_name: str,
    channels: Mapping[str, np.ndarray],
    like: ImageInfo | None,
    compression: str,
    half: set[str],
    metadata: dict[str, tuple[oiio.TypeDesc, object]],
) -> tuple[oiio.ImageSpec, np.ndarray]:
    if not channels:
        raise BadArgumentsError(f"no channels to write to {path}")
    arrays = [np.asarray(array) for array in channels.values()]
    shapes = {array.shape for array in arrays}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"channels for {path} must be 2-D arrays of one shape (H, W), got {sorted(shapes)}")
    height, width = next(iter(shapes))
    if like is not None and (like.width, like.height) != (width, height):
        raise ValueError(
            f"channels for {path} are {width}x{height} but the data window they should keep is "
            f"{like.width}x{like.height}"
        )
    names = list(channels)
    formats = ["half" if name in half else "float" for name in names]
    # OpenImageIO ignores per-channel formats that all agree: the part's format must say it then.
    spec = oiio.ImageSpec(width, height, len(names), formats[0] if len(set(formats)) == 1 else "float")
    spec.channelnames = tuple(names)
    spec.channelformats = tuple(oiio.TypeDesc(fmt) for fmt in formats)
    if like is not None:
        spec.x, spec.y = like.data_window[0], like.data_window[1]
        spec.full_x, spec.full_y, spec.full_width, spec.full_height = like.display_window
        spec.attribute("PixelAspectRatio", float(like.pixel_aspect))
    for name, (kind, value) in metadata.items():
        spec.attribute(name, kind, value)
    spec.attribute("compression", compression)
    if part_name:
        spec.attribute("oiio:subimagename", part_name)
    data = np.stack([array.astype(np.float32, copy=False) for array in arrays], axis=-1)  # (H, W, C)
    return spec, np.ascontiguousarray(data)


def _write_parts(temporary: Path, path: Path, specs: list[oiio.ImageSpec], pixels: list[np.ndarray]) -> None:
    output = oiio.ImageOutput.create(str(temporary))
    if output is None:
        raise OutputNotWritableError(f"cannot write {path}: {oiio.geterror()}")
    ok = output.open(str(temporary), specs) if len(specs) > 1 else output.open(str(temporary), specs[0])
    try:
        for index, (spec, data) in enumerate(zip(specs, pixels, strict=True)):
            if ok and index > 0:
                ok = output.open(str(temporary), spec, "AppendSubimage")
            ok = ok and output.write_image(data)
    finally:
        ok = output.close() and ok  # the last chunks reach the file only on close
    if not ok:
        reason = output.geterror() or oiio.geterror() or "write failed"
        raise OutputNotWritableError(f"cannot write {path} in folder {path.parent}: {reason}")
