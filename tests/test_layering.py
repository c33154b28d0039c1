"""The layering docs/ARCHITECTURE.md promises, checked against every import the code writes.

The table in docs/ARCHITECTURE.md ("module | layer | job | may import") is the rule: this test parses
it from the page, so the page and the test cannot disagree, and parses every module with `ast`
(imports inside functions included).
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ARCHITECTURE = REPO / "docs" / "ARCHITECTURE.md"
CORE = "bufferany_core"
# where each scanned tree's modules live on sys.path: (folder, module prefix); a folder row (`x/`) is a host
# adapter whose own modules import each other freely
SOURCES = {
    "bufferany_core": (REPO, ""),
    "training/bufferany_training": (REPO / "training", ""),
    "nuke_plugin": (REPO / "nuke_plugin", ""),  # on NUKE_PATH: `bufferany_nuke`, `init`, `menu`
    "blender_addon": (REPO, ""),  # a package, relative imports
    "pyblish_plugins": (REPO / "pyblish_plugins", ""),  # loaded by path: each file is a module
}
STDLIB_LAYERS = ("base", "host-side", "host adapter")  # may reach only base and host-side rows
# TEMPORARY, one line per violation still in files owned by other work in issue 15; each must go
KNOWN = {
}


@dataclass
class Row:
    key: str  # `bufferany_core.flow`, `bufferany_training`, `nuke_plugin/`
    layer: str
    tokens: list[str]
    internal: set[str] = field(default_factory=set)  # row keys it may import, transitively
    external: set[str] = field(default_factory=set)  # third-party top-level names, transitively


def _cells(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]


def read_table(text: str) -> dict[str, Row]:
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if _cells(line)[:2] == ["module", "layer"])
    rows: dict[str, Row] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        module, layer, _job, may = _cells(line)
        key = module.strip("`")
        rows[key] = Row(key, layer, re.findall(r"`([^`]+)`", may))
    return rows


def _resolve_tokens(rows: dict[str, Row]) -> None:
    """Expand each row's tokens into the rows and third-party names it may import, transitively."""

    def key_of(token: str) -> str | None:
        for key in (token, f"{CORE}.{token}"):
            if key in rows:
                return key
        return None

    direct: dict[str, tuple[set[str], set[str]]] = {}
    for row in rows.values():
        internal, external = set(), set()
        for token in row.tokens:
            if token == "stdlib":
                continue
            if token == "base":
                internal |= {k for k, r in rows.items() if r.layer == "base"}
            elif token == "core":
                internal |= {k for k in rows if k == CORE or k.startswith(CORE + ".")}
            elif key_of(token):
                internal.add(key_of(token))
            else:
                assert "." not in token and "/" not in token, f"{row.key}: {token!r} names no row"
                external.add(token)
        direct[row.key] = (internal - {row.key}, external)
    for row in rows.values():
        pending, seen = list(direct[row.key][0]), set()
        while pending:
            key = pending.pop()
            if key not in seen:
                seen.add(key)
                pending += direct[key][0]
        row.internal = seen
        row.external = direct[row.key][1].union(*(direct[k][1] for k in seen))


ROWS = read_table(ARCHITECTURE.read_text(encoding="utf-8"))
_resolve_tokens(ROWS)


@dataclass
class Module:
    name: str
    path: Path
    row: str
    own: set[str]  # top-level names that are this host adapter's own modules


def scanned_modules() -> list[Module]:
    modules = []
    for folder, (root, _) in SOURCES.items():
        base = REPO / folder
        own = {p.stem if p.is_file() else p.name for p in base.iterdir() if p.suffix == ".py" or p.is_dir()}
        for path in sorted(base.rglob("*.py")):
            if "vendor" in path.relative_to(base).parts:
                continue
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__" and len(parts) > 1 and parts[:-1] != [CORE]:
                parts = parts[:-1]
            name = ".".join(parts)
            row = f"{folder}/" if f"{folder}/" in ROWS else _row_of(name)
            modules.append(Module(name, path, row, own if row.endswith("/") else set()))
    return modules


def _row_of(name: str) -> str:
    best = ""
    for key in ROWS:
        if (name == key or name.startswith(key + ".")) and len(key) > len(best):
            best = key
    if not best:
        raise AssertionError(f"{name}: no row in docs/ARCHITECTURE.md covers it; add one")
    return best


MODULES = scanned_modules()
KNOWN_NAMES = {m.name for m in MODULES}


def imports_of(module: Module) -> list[tuple[str, int]]:
    """(imported module, line) for every import statement, resolved: `from a import b` is `a.b` when
    that is a module; relative imports are resolved against the module's package."""
    tree = ast.parse(module.path.read_text(encoding="utf-8"), filename=str(module.path))
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(p for p in [*parts, node.module or ""] if p)
            else:
                base = node.module or ""
            for alias in node.names:
                full = f"{base}.{alias.name}"
                found.append((full if full in KNOWN_NAMES else base, node.lineno))
    return found


def _target_row(target: str, module: Module) -> str | None:
    """The row `target` belongs to, or None for a third-party or standard-library module."""
    top = target.split(".")[0]
    if top in module.own or (module.row.endswith("/") and target.startswith(module.name.split(".")[0] + ".")):
        return module.row
    if top == CORE:
        return _row_of("bufferany_core.__init__" if target == CORE else target)
    if top == "bufferany_training":
        return _row_of(target)
    for folder in SOURCES:
        row = f"{folder}/"
        if row in ROWS and top in {p.stem if p.is_file() else p.name for p in (REPO / folder).iterdir()}:
            return row
    return None


def violations() -> list[str]:
    found = []
    for module in MODULES:
        row = ROWS[module.row]
        for target, line in imports_of(module):
            top = target.split(".")[0]
            if top in sys.stdlib_module_names:
                continue
            target_row = _target_row(target, module)
            if target_row is None:
                allowed = top in row.external
            else:
                allowed = target_row == module.row or target_row in row.internal
            if not allowed and (module.name, target) not in KNOWN:
                where = f"{module.path.relative_to(REPO)}:{line}"
                found.append(f"{module.name} ({where}, row {module.row!r}) imports {target}")
    return found


def test_the_table_is_read_and_covers_every_module():
    assert {"bufferany_core.errors", "bufferany_core.pipeline", "nuke_plugin/", "pyblish_plugins/"} <= set(ROWS)
    assert {m.row for m in MODULES} >= {"bufferany_core.flow", "bufferany_core.models.weights", "nuke_plugin/"}
    assert ROWS["bufferany_core.jobs"].layer == "base"


def test_every_import_is_allowed_by_its_row():
    assert violations() == []


@pytest.mark.parametrize("key", [k for k, r in ROWS.items() if r.layer in STDLIB_LAYERS])
def test_host_side_rows_reach_only_the_standard_library(key):
    """Base and host-side modules and the Nuke and Blender adapters run in the hosts' own Pythons:
    whatever they may import, however indirectly, is base or host-side (plus the host's own module)."""
    row = ROWS[key]
    reached = {k for k in row.internal if ROWS[k].layer not in ("base", "host-side")}
    assert not reached, f"{key} may reach {sorted(reached)}"
    assert row.external <= {"nuke", "bpy"}, f"{key} may import {sorted(row.external)}"


def test_known_exceptions_still_exist():
    """A listed exception that the code no longer has must leave KNOWN (so the list only shrinks)."""
    present = {(m.name, t) for m in MODULES for t, _ in imports_of(m)}
    assert set(KNOWN) <= present, set(KNOWN) - present


def test_a_forbidden_import_is_named(tmp_path):
    module = Module("bufferany_core.errors", tmp_path / "errors.py", "bufferany_core.errors", set())
    module.path.write_text("def f():\n    import numpy\n    from bufferany_core.pipeline import render\n")
    assert imports_of(module) == [("numpy", 2), ("bufferany_core.pipeline.render", 3)]
    row = ROWS[module.row]
    assert "numpy" not in row.external and _target_row("bufferany_core.pipeline.render", module) not in row.internal
