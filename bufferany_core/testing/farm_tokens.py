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


def expand_openjd(template: str, chunk: str) -> str:
    """An OpenJD task's `{{Task.Param.Frames}}` replaced by its chunk, as the worker agent does."""
    return template.replace("{{Task.Param.Frames}}", chunk)


def split_deadline_arguments(arguments: str) -> list[str]:
    """Deadline's `Arguments=` split as the worker's process start splits it (the rules of a Windows
    command line, used on every platform): blanks separate, double quotes group, backslashes are
    literal except in a run before a double quote (2n -> n and a quote; 2n+1 -> n and a literal quote)."""
    args: list[str] = []
    current: list[str] = []
    in_quotes = started = False
    i = 0
    while i < len(arguments):
        c = arguments[i]
        if c == "\\":
            run = len(arguments[i:]) - len(arguments[i:].lstrip("\\"))
            if i + run < len(arguments) and arguments[i + run] == '"':
                current.append("\\" * (run // 2))
                if run % 2:
                    current.append('"')
                    i += run + 1
                else:
                    i += run
                started = True
                continue
            current.append("\\" * run)
            i += run
            started = True
            continue
        if c == '"':
            in_quotes = not in_quotes
            started = True
        elif c in " \t" and not in_quotes:
            if started:
                args.append("".join(current))
                current, started = [], False
        else:
            current.append(c)
            started = True
        i += 1
    if started:
        args.append("".join(current))
    return args
