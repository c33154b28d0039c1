#!/usr/bin/env bash
# The whole test suite: sets up the environments, then runs the main suite and the Blender suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

status=0
.venv/bin/python -m pytest --ignore=tests/blender "$@" || status=$?
if [ "${BUFFERANY_SKIP_BLENDER:-0}" != "1" ]; then
  .venv-blender/bin/python -m pytest -p no:cacheprovider tests/blender "$@" || status=$?
  # the add-on on Blender 4.2 LTS (scene.node_tree compositor, extension and legacy installs)
  .venv-blender42/bin/python -m pytest -p no:cacheprovider \
    tests/blender/test_addon_nodes.py tests/blender/test_addon_install.py "$@" || status=$?
fi
exit $status
