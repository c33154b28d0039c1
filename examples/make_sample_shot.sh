#!/usr/bin/env bash
# Regenerates examples/sample_shot/ with Blender (bpy, Cycles on the CPU): 40 frames at 192x112,
# plate + exact depth and normals + camera poses. About 2-4 minutes on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
out=examples/sample_shot
rm -rf "$out/plate" "$out/gt" "$out/cameras.json"
.venv-blender/bin/python scripts/blender/render_synthetic_shot.py --out "$out" --seed 0 \
  --frames 40 --first-frame 1001 --width 192 --height 112 --samples 16 --denoise --normal-precision half
du -sh "$out"
