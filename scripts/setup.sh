#!/usr/bin/env bash
# Creates (or updates) the virtual environments the project needs. Idempotent.
#   .venv          the project, its models and its tests (Python 3.11, torch from this machine's disk)
#   .venv-blender  Blender as a Python module (bpy pins numpy 1.26, so it lives apart)
#   .venv-blender42  Blender 4.2 LTS as a module: the add-on's tests on the older compositor API
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.11}

if [ ! -x .venv/bin/python ]; then "$PYTHON" -m venv .venv; fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[dev]"

if [ "${BUFFERANY_SKIP_BLENDER:-0}" != "1" ]; then
  if [ ! -x .venv-blender/bin/python ]; then "$PYTHON" -m venv .venv-blender; fi
  .venv-blender/bin/python -m pip install -q --upgrade pip
  .venv-blender/bin/python -m pip install -q -r blender_addon/requirements-test.txt
  if [ ! -x .venv-blender42/bin/python ]; then "$PYTHON" -m venv .venv-blender42; fi
  .venv-blender42/bin/python -m pip install -q --upgrade pip
  .venv-blender42/bin/python -m pip install -q -r blender_addon/requirements-test-4.2.txt
fi
