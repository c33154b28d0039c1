"""A copy of the checkout whose RenderJob has one more field, `sharpen`, for the tests that prove a
field added once shows up everywhere (CLI, farm, fingerprint, protocol, Nuke, Blender). Standard
library only: the Blender suite imports it too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NEW_FIELD = """    sharpen: int | None = job_field(
        None, help="test field", label="sharpen", kind="int", minimum=1, pixels=True, advanced=True
    )
"""


def copy_with_new_field(tmp_path: Path, *hosts: str) -> Path:
    """bufferany_core (RenderJob gets `sharpen` after its last field) and the `hosts` folders, copied."""
    copy = tmp_path / "checkout"
    ignore = shutil.ignore_patterns("__pycache__", "vendor")
    for name in ("bufferany_core", *hosts):
        shutil.copytree(REPO / name, copy / name, ignore=ignore)
    jobs = copy / "bufferany_core" / "jobs.py"
    source = jobs.read_text()
    fields_end = source.index("\n    def ", source.index("class RenderJob"))  # the first method ends the fields
    jobs.write_text(source[:fields_end] + "\n" + NEW_FIELD.rstrip("\n") + source[fields_end:])
    return copy


def run_in(copy: Path, script: str, *, python: str = sys.executable, cwd: Path | None = None, env=None) -> dict:
    """Run `script` with the copy first on sys.path (never the checkout: the working folder is not
    the repository); returns the JSON object its last line prints."""
    full_env = {**os.environ, "PYTHONPATH": str(copy), "BUFFERANY_CORE_PATH": str(copy), **(env or {})}
    done = subprocess.run(
        [python, "-c", textwrap.dedent(script)],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=cwd or copy,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])
