"""Build the installable Blender extension: dist/bufferany_blender-<version>.zip.

    python scripts/build_blender_addon.py [--out DIR]

The zip holds one folder, `bufferany/` (the manifest's id): the add-on's files from blender_addon/
and, in `vendor/bufferany_core/`, copies of the standard-library modules of bufferany_core that the
add-on uses (the client and what it imports), taken from the repository at build time. Their
`bufferany_core` imports become package-relative, so the copy works without anything on sys.path
and cannot clash with another bufferany_core. `vendor/model_catalogue.json` lists the model
catalogue's names per pass (`bufferany_core.models.catalog`, read without torch): the add-on offers
them when the server does not list its models. The same zip installs with Blender's extension
installer (4.2 and newer) and as a legacy add-on. Standard library only.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ADDON = REPO / "blender_addon"
CORE = REPO / "bufferany_core"
# what blender_addon/core.py imports (jobs: the settings are made from RenderJob's fields)
CORE_ROOTS = ("client", "conventions", "errors", "framepaths", "jobs", "protocol")
ADDON_SUFFIXES = (".py", ".toml")
_IMPORT = re.compile(r"^(\s*)from bufferany_core(\.(\w+))? import ", re.MULTILINE)


def core_modules(roots: tuple[str, ...] = CORE_ROOTS) -> list[str]:
    """`roots` and every bufferany_core module they import, transitively (sorted names)."""
    found: set[str] = set()
    pending = list(roots)
    while pending:
        name = pending.pop()
        if name in found:
            continue
        path = CORE / f"{name}.py"
        if not path.is_file():
            raise SystemExit(f"bufferany_core/{name}.py is missing (imported by the add-on's core modules)")
        found.add(name)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import) and any(
                a.name.split(".")[0] == "bufferany_core" for a in node.names
            ):
                raise SystemExit(
                    f"{path}: write `from bufferany_core import ...`, the build rewrites only that form"
                )
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.split(".")[0] == "bufferany_core"
            ):
                parts = node.module.split(".")
                if len(parts) > 2:
                    raise SystemExit(f"{path}: imports {node.module}, a subpackage the add-on cannot carry")
                pending += [parts[1]] if len(parts) == 2 else [alias.name for alias in node.names]
    return sorted(found)


def relative_imports(source: str) -> str:
    """`from bufferany_core.x import y` -> `from .x import y`; `from bufferany_core import x` -> `from . import x`."""
    return _IMPORT.sub(lambda m: f"{m[1]}from .{m[3] or ''} import ", source)


def model_catalogue() -> dict:
    """Every catalogue model's name per pass, and each pass's default (the catalogue imports no torch)."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from bufferany_core.models import catalog

    return {
        "models": {"depth": sorted(catalog.DEPTH_MODELS), "normal": sorted(catalog.NORMAL_MODELS)},
        "default": dict(catalog.DEFAULT_MODELS),
    }


def addon_version() -> str:
    manifest = tomllib.loads((ADDON / "blender_manifest.toml").read_text(encoding="utf-8"))
    version = manifest["version"]
    init = (ADDON / "__init__.py").read_text(encoding="utf-8")
    bl_info = re.search(r'"version":\s*\((\d+),\s*(\d+),\s*(\d+)\)', init)
    if bl_info is None or ".".join(bl_info.groups()) != version:
        raise SystemExit(
            f"bl_info's version in blender_addon/__init__.py differs from the manifest's {version}"
        )
    return version


def build(out_dir: Path) -> Path:
    version = addon_version()
    package = tomllib.loads((ADDON / "blender_manifest.toml").read_text(encoding="utf-8"))["id"]
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"bufferany_blender-{version}.zip"
    partial = target.with_name(target.name + ".part")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(ADDON.iterdir()):
            if path.is_file() and path.suffix in ADDON_SUFFIXES:
                archive.write(path, f"{package}/{path.name}")
        vendor = f"{package}/vendor"
        archive.writestr(
            f"{vendor}/__init__.py", '"""Copies of bufferany_core modules, made by the build."""\n'
        )
        archive.writestr(f"{vendor}/model_catalogue.json", json.dumps(model_catalogue(), indent=1) + "\n")
        for name in ["__init__", *core_modules()]:
            source = (CORE / f"{name}.py").read_text(encoding="utf-8")
            archive.writestr(f"{vendor}/bufferany_core/{name}.py", relative_imports(source))
    partial.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "dist", help="output folder (default: dist/)")
    args = parser.parse_args(argv)
    print(build(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
