"""Render every BufferAnytime node of a Nuke script without the GUI:

    NUKE_PATH=/path/to/bufferany/nuke_plugin nuke -t /path/to/bufferany/nuke_plugin/bufferany_nuke/batch.py \\
        shot.nk [NODE ...] [--save | --save-as PATH]

The same path as the Generate button, synchronously. The artist's script is never overwritten:
`--save` writes the next version beside it (shot_v012.nk -> shot_v013.nk; a name without a version
gets `_bufferany`), `--save-as PATH` writes that file (refused when it exists, or when it is the
script itself); either way its nodes read the passes when opened. Exits with the first failing
node's bufferany exit code.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import nuke

from bufferany_core.errors import BadArgumentsError, BufferanyError, ExitCode
from bufferany_nuke.generate import generate, stop_started_servers
from bufferany_nuke.node import is_bufferany_node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nuke -t bufferany_nuke/batch.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("script", help="the .nk script to open")
    parser.add_argument("nodes", nargs="*", help="BufferAnytime nodes to render (default: all of them)")
    saving = parser.add_mutually_exclusive_group()
    saving.add_argument(
        "--save", action="store_true", help="save the next version of the script once its nodes are rendered"
    )
    saving.add_argument("--save-as", metavar="PATH", help="save the script to PATH once its nodes are rendered")
    args = parser.parse_args(argv)
    try:
        target = _save_target(args.script, args.save_as) if (args.save or args.save_as) else None
    except BufferanyError as exc:
        print(f"bufferany: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    nuke.scriptOpen(args.script)
    try:
        return _render(args.nodes, target)
    finally:
        for line in stop_started_servers():  # a server started for this task ends with it
            print(f"bufferany: {line}")


def _render(names: list[str], target: Path | None) -> int:
    try:
        nodes = _nodes(names)
    except BufferanyError as exc:
        print(f"bufferany: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    for group in nodes:
        try:
            result = generate(group, synchronous=True)
        except BufferanyError as exc:
            print(f"bufferany: {group.fullName()}: {exc}", file=sys.stderr)
            return int(exc.exit_code)
        except (ValueError, RuntimeError, OSError) as exc:  # Nuke's own render errors, file system
            print(f"bufferany: {group.fullName()}: {exc}", file=sys.stderr)
            return int(ExitCode.INTERNAL)
        print(
            f"bufferany: {group.fullName()}: {group['status'].value()}: {(result or {}).get('output_pattern')}"
        )
    if target is not None:
        nuke.scriptSaveAs(str(target), overwrite=False)
        print(f"bufferany: saved {target}")
    return int(ExitCode.OK)


def next_version(script: str | os.PathLike[str]) -> Path:
    """The first free name after `script`: shot_v012.nk -> shot_v013.nk (keeping the digits' width),
    comp.nk -> comp_bufferany.nk (then comp_bufferany_v002.nk, ...)."""
    path = Path(script)
    match = re.search(r"(?i)(?<![a-z])(v)(\d+)(?!.*\d)", path.stem)
    if match is None:
        candidate = path.with_name(f"{path.stem}_bufferany{path.suffix}")
        if not candidate.exists():
            return candidate
        return next_version(path.with_name(f"{path.stem}_bufferany_v001{path.suffix}"))
    number, width = int(match.group(2)), len(match.group(2))
    while True:
        number += 1
        stem = f"{path.stem[: match.start(2)]}{number:0{width}d}{path.stem[match.end(2) :]}"
        candidate = path.with_name(stem + path.suffix)
        if not candidate.exists():
            return candidate


def _save_target(script: str, save_as: str | None) -> Path:
    if save_as is None:
        return next_version(script)
    target = Path(save_as).expanduser().absolute()
    if target == Path(script).expanduser().absolute():
        raise BadArgumentsError(f"--save-as {save_as}: that is the script itself; it is never overwritten")
    if target.exists():
        raise BadArgumentsError(f"--save-as {save_as}: the file exists; name a new one")
    return target


def _nodes(names: list[str]) -> list[nuke.Node]:
    if not names:
        found = [n for n in nuke.allNodes("Group", recurseGroups=True) if is_bufferany_node(n)]
        if not found:
            raise BadArgumentsError("the script has no BufferAnytime node")
        return found
    nodes = []
    for name in names:
        node = nuke.toNode(name)
        if node is None or not is_bufferany_node(node):
            raise BadArgumentsError(f"no BufferAnytime node named {name!r} in the script")
        nodes.append(node)
    return nodes


if __name__ == "__main__":
    sys.exit(main())
