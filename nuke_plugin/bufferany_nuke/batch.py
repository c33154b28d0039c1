"""Render every BufferAnytime node of a Nuke script without the GUI:

    NUKE_PATH=/path/to/bufferany/nuke_plugin nuke -t /path/to/bufferany/nuke_plugin/bufferany_nuke/batch.py \\
        shot.nk [NODE ...] [--save]

The same path as the Generate button, synchronously. `--save` saves the script afterwards so its
nodes read the passes when opened. Exits with the first failing node's bufferany exit code.
"""

from __future__ import annotations

import argparse
import sys

import nuke

from bufferany_core.errors import BadArgumentsError, BufferanyError, ExitCode
from bufferany_nuke.generate import generate
from bufferany_nuke.node import is_bufferany_node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="nuke -t bufferany_nuke/batch.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("script", help="the .nk script to open")
    parser.add_argument("nodes", nargs="*", help="BufferAnytime nodes to render (default: all of them)")
    parser.add_argument("--save", action="store_true", help="save the script once its nodes are rendered")
    args = parser.parse_args(argv)
    nuke.scriptOpen(args.script)
    try:
        nodes = _nodes(args.nodes)
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
    if args.save:
        nuke.scriptSave(args.script)
    return int(ExitCode.OK)


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
