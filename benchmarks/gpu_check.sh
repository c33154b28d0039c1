#!/usr/bin/env bash
# One call for a session that holds a GPU machine (docs/gpu_check.md): installs the carried wheels
# (.whl/, from benchmarks/fetch_gpu_wheels.sh), then runs benchmarks/gpu_check.py: the CUDA-only
# tests, the sample shot at --precision auto (fp16) and fp32 and their difference, image vs video
# depth models and the normal models at 518 px, the depth model's window memory, the null-model
# pipeline at 4K; one table at the end. About 7 minutes on an H200 (budget: --budget, 450 s).
#
#   bash benchmarks/gpu_check.sh                  # GPU machine: --device cuda, real sizes
#   bash benchmarks/gpu_check.sh --device cpu     # any machine, tiny sizes (tests/test_gpu_check.py)
#
# Figures go to $OUT/gpu_check.json and the steps' output to $OUT/gpu_check.log when OUT is set
# (the device tool's folder), else to --out DIR. Other arguments go to benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."

device=cuda
out=${OUT:-}
passed=()
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) passed+=("$1"); shift ;;
  esac
done
python=${PYTHON:-python3}

# The bare machine lacks some of the project's packages: the wheels travel in .whl (carry). Only
# for CUDA runs: a CPU run uses the interpreter it is given, whose packages may be another Python's.
if [ "$device" != cpu ] && compgen -G ".whl/*.whl" >/dev/null; then
  "$python" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PWD:$PWD/training${PYTHONPATH:+:$PYTHONPATH}
else
  export PYTHONPATH=$PWD:$PWD/training${PYTHONPATH:+:$PYTHONPATH}
fi

reports=()
if [ -n "$out" ]; then
  mkdir -p "$out"
  reports=(--json "$out/gpu_check.json" --log "$out/gpu_check.log")
fi
exec "$python" benchmarks/gpu_check.py --device "$device" "${reports[@]}" ${passed[@]+"${passed[@]}"}
