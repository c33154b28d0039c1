"""The attributes of an OpenEXR file's header, with the standard library only (Nuke's Python has no
numpy or OpenImageIO): string, int, float and double attributes; other types are skipped."""

from __future__ import annotations

import struct
from typing import Union

EXR_MAGIC = 20000630
HEADER_LIMIT = 1 << 20  # a header larger than this is not one the node needs to read

Value = Union[str, int, float]  # noqa: UP007 (a runtime alias: Nuke 14 runs Python 3.9)


def read_attributes(path: str) -> dict[str, Value]:
    """The (first part's) header attributes of the EXR at `path`. Raises OSError when it cannot be
    read, ValueError when it is not an EXR or its header is cut short."""
    with open(path, "rb") as handle:
        data = handle.read(HEADER_LIMIT)
    if len(data) < 8 or struct.unpack_from("<i", data)[0] != EXR_MAGIC:
        raise ValueError(f"{path} is not an OpenEXR file")
    found: dict[str, Value] = {}
    position = 8
    while True:
        name_end = data.find(b"\0", position)
        if name_end < 0:
            raise ValueError(f"{path}: the header is cut short")
        if name_end == position:  # the empty name ends the header
            return found
        type_end = data.find(b"\0", name_end + 1)
        if type_end < 0 or type_end + 5 > len(data):
            raise ValueError(f"{path}: the header is cut short")
        (size,) = struct.unpack_from("<i", data, type_end + 1)
        start = type_end + 5
        if size < 0 or start + size > len(data):
            raise ValueError(f"{path}: the header is cut short")
        name = data[position:name_end].decode("utf-8", "replace")
        kind = data[name_end + 1 : type_end]
        raw = data[start : start + size]
        if kind == b"string":
            found[name] = raw.decode("utf-8", "replace")
        elif kind == b"int" and size == 4:
            found[name] = struct.unpack("<i", raw)[0]
        elif kind == b"float" and size == 4:
            found[name] = struct.unpack("<f", raw)[0]
        elif kind == b"double" and size == 8:
            found[name] = struct.unpack("<d", raw)[0]
        position = start + size
