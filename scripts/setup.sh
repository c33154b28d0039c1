#!/usr/bin/env bash
# Creates (or updates) the virtual environments the project needs. Idempotent.
#   .venv          the project, its models and its tests (Python 3.11, torch from this machine's disk)
#   .venv-blender  Blender as a Python module (bpy pins numpy 1.26, so it lives apart)
#   .venv-blender42  Blender 4.2 LTS, .venv-blender45 4.5 LTS (Python 3.11), .venv-blender53 5.3 (Python 3.13):
#                  the add-on's suite on every compositor API it supports (docs/blender.md)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}

if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"

if [ "${BUFFERANY_SKIP_BLENDER:-0}" != "1" ]; then
  # one environment per Blender release the add-on is tested on: the Python that release embeds, its bpy
  blender_venv() {  # folder, python, requirements file
    if [ ! -x "$1/bin/python" ]; then "$2" -m venv "$1"; fi
    "$1/bin/python" -m pip install -q --upgrade pip
    "$1/bin/python" -m pip install -q -r "$3"
  }
  # Blender 5.1+ embeds Python 3.13: $PYTHON313, else python3.13 (under pyenv: its newest 3.13)
  PYTHON313=${PYTHON313:-python3.13}
  PYENV313=$( (pyenv versions --bare 2>/dev/null || true) | grep -E '^3[.]13([.]|$)' | tail -1)
  blender_venv .venv-blender "$PYTHON" blender_addon/requirements-test.txt             # 5.0
  blender_venv .venv-blender42 "$PYTHON" blender_addon/requirements-test-4.2.txt       # 4.2 LTS
  blender_venv .venv-blender45 "$PYTHON" blender_addon/requirements-test-4.5.txt       # 4.5 LTS
  PYENV_VERSION=${PYENV313:-${PYENV_VERSION:-}} blender_venv .venv-blender53 "$PYTHON313" \
    blender_addon/requirements-test-5.3.txt                                           # 5.3 (Python 3.13)
fi
