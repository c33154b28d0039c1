"""What a render farm does to a job's frame tokens, to run farm commands in tests without a farm."""

from __future__ import annotations

import re

from bufferany_core.pipeline.farm import FARM_TOKEN


def expand_tokens(template: str, start: int, end: int, *, chunk: int | None = None) -> str:
    """Replace Deadline and OpenCue frame tokens as the farm would for a chunk `start`..`end`."""

    def replace(match: re.Match[str]) -> str:
        deadline, padding, opencue = match.groups()
        if deadline:
            value = start if deadline == "STARTFRAME" else end
            return str(value).zfill(int(padding or 0))
        return {
            "FRAME_START": str(start),
            "FRAME_END": str(end),
            "IFRAME": str(start),
            "ZFRAME": str(start).zfill(4),
            "FRAME_CHUNK": str(chunk if chunk is not None else end - start + 1),
            "FRAMESPEC": f"{start}-{end}",
        }[opencue]

    return FARM_TOKEN.sub(replace, template)
