#!/usr/bin/env bash
# The whole test suite: sets up the environments, then runs the main suite and the Blender suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

status=0
BLENDER_ADDON_TESTS="tests/blender/test_addon_nodes.py tests/blender/test_addon_install.py tests/blender/test_addon_server.py tests/blender/test_addon_modal.py tests/blender/test_job_fields_blender.py"
.venv/bin/python -m pytest --ignore=tests/blender "$@" || status=$?
if [ "${BUFFERANY_SKIP_BLENDER:-0}" != "1" ]; then
  .venv-blender/bin/python -m pytest -p no:cacheprovider tests/blender "$@" || status=$?
  # the add-on's suite on the other supported releases (4.2 and 4.5 LTS: scene.node_tree compositor;
  # 5.3: compositor effects, Python 3.13); the synthetic shot and pyblish tests run on 5.0 only
  for venv in .venv-blender42 .venv-blender45 .venv-blender53; do
    "$venv/bin/python" -m pytest -p no:cacheprovider $BLENDER_ADDON_TESTS "$@" || status=$?
  done
fi
exit $status
