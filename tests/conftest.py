"""Shared fixtures. Standard library only: the Blender suite (tests/blender) loads this file too."""

from __future__ import annotations

import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
BLENDER_TESTS = REPO / "tests" / "blender"
NO_BPY = (
    "needs bpy (Blender as a Python module, Python 3.11): run tests/blender in the Blender virtual "
    "environment (.venv-blender, scripts/test.sh)"
)
# Weight hashes are cached per user (~/.cache/bufferany); tests and the processes they start keep
# theirs in a folder of their own.
if "BUFFERANY_HASH_CACHE" not in os.environ:
    _HASH_CACHE_FOLDER = tempfile.mkdtemp(prefix="bufferany-tests-")
    os.environ["BUFFERANY_HASH_CACHE"] = os.path.join(_HASH_CACHE_FOLDER, "weights_sha256.json")
    atexit.register(shutil.rmtree, _HASH_CACHE_FOLDER, ignore_errors=True)
HEAVY_MODULES = ("torch", "numpy", "cv2", "OpenImageIO", "timm", "diffusers", "torchvision", "fileseq")

_BLOCKER = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {heavy!r}:
            raise ImportError(f"{{name}} is not available in a host's Python")
        return None
sys.meta_path.insert(0, _Block())
"""


def run_without_heavy_modules(code: str, *, python: str = sys.executable, timeout: float = 120, env=None):
    """Run `code` in a fresh interpreter where torch, numpy, OpenImageIO, ... cannot be imported,
    as inside Nuke or Blender. Returns the CompletedProcess (check returncode, stdout, stderr)."""
    program = _BLOCKER.format(heavy=HEAVY_MODULES) + textwrap.dedent(code)
    full_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([python, "-c", program], capture_output=True, text=True, timeout=timeout, env=full_env)


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not SHARED.is_dir():
        pytest.fail(f"{SHARED} is missing: the project's shared folder must sit beside the checkout")
    return SHARED


class _NeedsBpy(pytest.Module):
    """A tests/blender module where bpy is absent: skipped with the reason, never imported."""

    def collect(self):
        pytest.skip(NO_BPY)


def pytest_pycollect_makemodule(module_path, parent):
    if BLENDER_TESTS in Path(module_path).parents and importlib.util.find_spec("bpy") is None:
        return _NeedsBpy.from_parent(parent, path=Path(module_path))
    return None
