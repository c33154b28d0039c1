"""A frame's file from a sequence pattern: the one rule every writer, reader and host adapter uses.

`shot.####.exr` (one `#` per digit, Nuke's meaning) and `shot.%04d.exr` (`%d`: unpadded) name frame
1001 `shot.1001.exr`; negative frames keep the padding after the sign, like printf (`-001`). Only the
first frame token counts. Standard library only, Python 3.9 and newer: the hosts import it.
(Reading a pattern into a sequence, with `$F4`, `@@@@` and single frames, is `frames.sequence`.)
"""

from __future__ import annotations

import re

from bufferany_core.errors import BadArgumentsError

_TOKEN = re.compile(r"(?P<hashes>#+)|%(?:0?(?P<width>\d+))?d")


def has_frame_token(pattern: str) -> bool:
    """True when `pattern` holds a `####` or `%04d` frame token."""
    return _TOKEN.search(pattern) is not None


def frame_path(pattern: str, frame: int) -> str:
    """The file of `frame` in a `shot.####.exr` or `shot.%04d.exr` pattern. Raises BadArgumentsError
    (a ValueError) when the pattern has no frame token."""

    def number(match: re.Match) -> str:
        padding = len(match["hashes"]) if match["hashes"] else int(match["width"] or 0)
        return str(frame).zfill(padding)

    path, found = _TOKEN.subn(number, pattern, count=1)
    if not found:
        raise BadArgumentsError(f"sequence pattern {pattern!r} has no frame number token (#### or %04d)")
    return path
