"""The built zip (scripts/build_blender_addon.py) installs into a clean Blender, through the extension
installer and as a legacy add-on, and runs on its vendored client alone (no checkout on sys.path)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest
import tomllib
from addon_support import REPO

pytestmark = pytest.mark.blender

# what blender_addon/core.py imports and what the client needs; the build adds any module they import
VENDORED = {"__init__", "client", "conventions", "discovery", "errors", "jobs", "protocol"}


@pytest.fixture(scope="module")
def built_zip(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_blender_addon.py"), "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return out / result.stdout.strip().splitlines()[-1].rsplit("/", 1)[-1]


def test_zip_holds_the_addon_and_the_vendored_client(built_zip):
    version = tomllib.loads((REPO / "blender_addon" / "blender_manifest.toml").read_text())["version"]
    assert built_zip.name == f"bufferany_blender-{version}.zip"
    with zipfile.ZipFile(built_zip) as archive:
        names = archive.namelist()
        assert all(name.startswith("bufferany/") for name in names)
        assert "bufferany/blender_manifest.toml" in names and "bufferany/__init__.py" in names
        vendored = {
            n.rsplit("/", 1)[-1][:-3] for n in names if n.startswith("bufferany/vendor/bufferany_core/")
        }
        assert VENDORED <= vendored
        assert "bufferany/vendor/model_catalogue.json" in names  # the model names, for the settings' menus
        for name in names:
            if name.startswith("bufferany/vendor/") and name.endswith(".py"):
                tree = ast.parse(archive.read(name).decode(), filename=name, feature_version=(3, 10))
                for node in ast.walk(tree):
                    if isinstance(node, ast.Import):
                        imported = [alias.name for alias in node.names]
                    elif isinstance(node, ast.ImportFrom) and not node.level:
                        imported = [node.module]
                    else:
                        continue
                    # the standard library only; bufferany_core itself only through relative imports
                    assert all(module.split(".")[0] in sys.stdlib_module_names for module in imported), (
                        name,
                        imported,
                    )
    assert not any("__pycache__" in name for name in names)


def _in_clean_blender(tmp_path, *parts: str) -> dict:
    """Run the code `parts` in a fresh Blender whose user folders are in tmp_path; the code prints
    a JSON report."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BUFFERANY_CORE_PATH")}
    env.update(HOME=str(tmp_path / "home"), BLENDER_USER_RESOURCES=str(tmp_path / "blender"))
    result = subprocess.run(
        [sys.executable, "-c", "\n".join(textwrap.dedent(part) for part in parts)],
        capture_output=True,
        text=True,
        timeout=180,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


CHECK = """
    import importlib.util
    report["bufferany_core_on_path"] = importlib.util.find_spec("bufferany_core") is not None
    report["client"] = module.core.client.__file__
    report["poll"] = bpy.ops.bufferany.generate.poll()
    listing = module.models.catalogue()  # the model names the build copied from the catalogue
    report["catalogue"] = listing and [listing["source"], listing["default"], listing["models"]["depth"]]
    try:
        module.core.client.Client.connect(discovery="{missing}")
    except module.core.client.ServerNotFoundError as exc:
        report["error"] = str(exc)
    print(json.dumps(report))
"""


def test_extension_installer_installs_and_enables_it(built_zip, tmp_path):
    report = _in_clean_blender(
        tmp_path,
        f"""
        import json, sys, bpy
        report = {{}}
        report["result"] = sorted(bpy.ops.extensions.package_install_files(
            filepath={str(built_zip)!r}, repo="user_default", enable_on_install=True))
        name = "bl_ext.user_default.bufferany"
        report["enabled"] = name in bpy.context.preferences.addons
        module = sys.modules[name]
        report["prefs"] = bpy.context.preferences.addons[name].preferences.connection
    """,
        CHECK.format(missing=tmp_path / "none.json"),
    )
    assert report["result"] == ["FINISHED"] and report["enabled"] and report["prefs"] == "DISCOVERY"
    assert not report["bufferany_core_on_path"]
    assert report["client"].startswith(str(tmp_path / "blender"))
    assert report["client"].endswith("bufferany/vendor/bufferany_core/client.py")
    assert report["poll"] and "none.json does not exist" in report["error"]
    source, default, depth_models = report["catalogue"]
    assert source == "catalogue" and default["depth"] in depth_models


def test_legacy_addon_install(built_zip, tmp_path):
    report = _in_clean_blender(
        tmp_path,
        f"""
        import json, sys, bpy, addon_utils
        report = {{}}
        report["result"] = sorted(bpy.ops.preferences.addon_install(filepath={str(built_zip)!r}))
        module = addon_utils.enable("bufferany", default_set=True)
        report["enabled"] = "bufferany" in bpy.context.preferences.addons
    """,
        CHECK.format(missing=tmp_path / "none.json"),
    )
    assert report["result"] == ["FINISHED"] and report["enabled"]
    assert not report["bufferany_core_on_path"]
    assert report["client"].endswith("bufferany/vendor/bufferany_core/client.py")
    assert report["poll"] and "none.json does not exist" in report["error"]
