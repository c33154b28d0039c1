#!/usr/bin/env bash
# The main job: from a fresh checkout, set up the environment and render the project's sample shot
# (examples/sample_shot) with bufferany-render, then write a contact sheet beside the passes.
#
#   bash scripts/main_job.sh            # output: out/sample_shot/shot_buffers.####.exr + contact_sheet.png
#
# Official weights are used when they are reachable offline ($BUFFERANY_MODELS or the Hugging Face
# cache); otherwise the same pipeline runs with tiny deterministic random weights and says so loudly
# (the output headers carry bufferany/untrained=1). Extra arguments go to bufferany-render.
# With network access, `.venv/bin/bufferany-models download --defaults` fetches the official weights
# once; BUFFERANY_FETCH_WEIGHTS=1 makes this script run it first (a failed download only warns).
set -euo pipefail
cd "$(dirname "$0")/.."

BUFFERANY_SKIP_BLENDER=${BUFFERANY_SKIP_BLENDER:-1} bash scripts/setup.sh  # rendering needs no Blender

plate=examples/sample_shot/plate/shot.####.exr
out=${BUFFERANY_OUT:-out/sample_shot}
mkdir -p "$out"
render=(.venv/bin/bufferany-render "$plate" -o "$out/shot_buffers.####.exr" "$@")

if [ "${BUFFERANY_FETCH_WEIGHTS:-0}" = 1 ]; then
  .venv/bin/bufferany-models download --defaults ${BUFFERANY_MODELS:+--to "$BUFFERANY_MODELS"} \
    || echo "WARNING: downloading the official weights failed (see above); going on without them" >&2
fi

set +e
"${render[@]}"
status=$?
set -e
if [ "$status" -eq 10 ]; then  # ExitCode.MISSING_WEIGHTS: the message above says which file goes where
  cat >&2 <<'BANNER'

################################################################################################
#  OFFICIAL WEIGHTS NOT FOUND OFFLINE: rendering with TINY RANDOM (UNTRAINED) WEIGHTS instead.  #
#  These passes exercise the whole pipeline but MEAN NOTHING as depth or normals.               #
#  With network: run the `bufferany-models download ...` command printed above (or              #
#  .venv/bin/bufferany-models download --defaults), then run this script again.                 #
################################################################################################

BANNER
  "${render[@]}" --depth-model video-depth-anything-tiny --normal-model buffer-anytime-normal-tiny \
    --weights random --processing-size 112
elif [ "$status" -ne 0 ]; then
  exit "$status"
fi

.venv/bin/python -m bufferany_core.pipeline.contact_sheet "$out/shot_buffers.####.exr" --plate "$plate" \
  -o "$out/contact_sheet.png"
