#!/usr/bin/env bash
# Download the wheels of benchmarks/gpu_wheels.txt into .whl/ for the GPU machine (Python 3.12,
# manylinux x86_64), and check that they leave the working tree room under the device tool's 64 MiB.
#
#   bash benchmarks/fetch_gpu_wheels.sh                  # -> .whl/*.whl (ignored by git through .git/info/exclude)
#   PYTHON_VERSION=3.11 DEST=/tmp/w bash benchmarks/fetch_gpu_wheels.sh   # same list for another Python
#
# docs/gpu_check.md says how a session carries .whl to the machine and runs benchmarks/gpu_check.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

python_version=${PYTHON_VERSION:-3.12}
dest=${DEST:-.whl}
budget_mib=${WHEEL_BUDGET_MIB:-48}  # 64 MiB for the whole tree; the tracked files take about 9

# .whl must not be committed nor travel uncarried: ignore it in this clone only.
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qxF '/.whl/' "$exclude" 2>/dev/null || echo '/.whl/' >>"$exclude"

mkdir -p "$dest"
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' benchmarks/gpu_wheels.txt)
# pip matches a manylinux_2_N tag only for the N it is given: name the common ones.
platforms=()
for tag in manylinux_2_28 manylinux_2_27 manylinux_2_24 manylinux_2_17 manylinux2014 manylinux1; do
  platforms+=(--platform "${tag}_x86_64")
done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version "$python_version" \
  --implementation cp "${platforms[@]}" -d "$dest" "${wanted[@]}"

# Only the listed versions may lie there: two versions of one package stop the install.
shopt -s nullglob
for wheel in "$dest"/*.whl; do
  name=$(basename "$wheel" | cut -d- -f1,2 | tr '[:upper:]' '[:lower:]' | tr - =)
  keep=0
  for spec in "${wanted[@]}"; do
    [ "$(echo "$spec" | tr '[:upper:]' '[:lower:]' | sed 's/==/=/; s/-/_/g')" = "$name" ] && keep=1
  done
  if [ "$keep" = 0 ]; then
    echo "removing $wheel: not in benchmarks/gpu_wheels.txt" >&2
    rm -f "$wheel"
  fi
done

total=0
for wheel in "$dest"/*.whl; do
  bytes=$(stat -c %s "$wheel")
  total=$((total + bytes))
  printf '%8.1f MiB  %s\n' "$(echo "$bytes / 1048576" | bc -l)" "$(basename "$wheel")"
done
printf '%8.1f MiB  total (%s wheels; budget %s MiB)\n' "$(echo "$total / 1048576" | bc -l)" "$(ls "$dest"/*.whl | wc -l)" "$budget_mib"
if [ "$total" -gt $((budget_mib * 1048576)) ]; then
  echo "ERROR: the wheels exceed ${budget_mib} MiB: the working tree would not fit the device tool's 64 MiB" >&2
  exit 1
fi
