"""Host-side code on every host Python: Nuke 14/15/16 run 3.9/3.10/3.11, Blender 4.2-5.0 3.11,
Blender 5.1+ 3.13. Each interpreter installed under pyenv runs tests/host_pythons_smoke.py with
`-S` (standard library only); one that is not installed is skipped, saying so."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import REPO

HOST_PYTHONS = ("3.9", "3.10", "3.11", "3.12", "3.13")
SMOKE = REPO / "tests" / "host_pythons_smoke.py"


def _pyenv_root() -> Path:
    return Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")


def find_python(version: str) -> Path | None:
    """The newest installed pyenv interpreter of `version` (e.g. 3.9 -> versions/3.9.18/bin/python)."""
    found = []
    for folder in (_pyenv_root() / "versions").glob(f"{version}.*"):
        patch = folder.name[len(version) + 1 :]
        python = folder / "bin" / "python"
        if patch.isdigit() and python.is_file():
            found.append((int(patch), python))
    return max(found)[1] if found else None


@pytest.mark.parametrize("version", HOST_PYTHONS)
def test_host_side_code_runs_on_every_host_python(version, tmp_path):
    python = find_python(version)
    if python is None:
        pytest.skip(f"Python {version} is not installed under {_pyenv_root() / 'versions'} (pyenv install {version})")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "BUFFERANY_CORE_PATH")}
    result = subprocess.run(
        [str(python), "-S", "-B", str(SMOKE), str(REPO)],
        capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["python"] == version and report["client"] == "ok"
    assert report["compiled"] > 30


@pytest.mark.parametrize("version", ("3.9", "3.13"))
def test_a_plugin_that_cannot_load_prints_one_line_at_nuke_start_up(version, tmp_path):
    """init.py then menu.py, as Nuke runs them, with bufferany_core nowhere to be found: one line on
    stderr, no traceback, Nuke goes on (exit 0), and no menu entry."""
    python = find_python(version)
    if python is None:
        pytest.skip(f"Python {version} is not installed under {_pyenv_root() / 'versions'}")
    plugin = REPO / "nuke_plugin"
    code = f"""
import sys
sys.path[:0] = [{str(REPO / "tests" / "fake_nuke")!r}, {str(plugin)!r}]
exec(compile(open({str(plugin / "init.py")!r}).read(), "init.py", "exec"), {{}})
exec(compile(open({str(plugin / "menu.py")!r}).read(), "menu.py", "exec"), {{}})
import nuke
print(sorted(nuke.menu("Nodes").items))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["BUFFERANY_CORE_PATH"] = str(tmp_path / "nowhere")
    result = subprocess.run(
        [str(python), "-S", "-B", "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    assert lines[0].startswith("bufferany: the BufferAnytime node is not available")
    assert "BUFFERANY_CORE_PATH" in lines[0] and "nowhere" in lines[0]
