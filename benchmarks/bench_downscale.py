"""`--downscale area` against the models' own resize on a 4K-like real clip with fine texture.

The first frames of `../shared/data/real/tokyo_walk.mp4` (1280x720, a walk through a busy street) are
tiled 3x3 into 3840x2160 frames: every detail of the real footage, at a third of its size on screen,
the fine texture a 4K plate shrunk to a model's input aliases on. Each depth model predicts the clip
as one window with `downscale="none"` (Video Depth Anything's official resize: long side capped at
1280 with an antialiased bicubic, then a plain bicubic to the input; an explicit processing size skips
the cap: one plain bicubic from 4K) and with `downscale="area"` (averaged straight to the same input
shape). Figures:
- temporal error: mean |d(t+1) - d(t)| over the clip in % of its range (2-98% quantiles); the camera
  walks, so it is not zero, but aliasing flicker adds to it;
- time: wall seconds of `predict` (resize included), best of `--repeat`;
printed with the ratios area / none.

    .venv/bin/python benchmarks/bench_downscale.py [--frames 12] [--repeat 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from bufferany_core.models.depth import load_depth_predictor
from bufferany_core.models.weights import RandomWeights

SHARED = Path(__file__).resolve().parents[2] / "shared"
CASES = (  # (label, model, weights seed, processing size: None = the official size rules)
    ("video-depth-anything-small, size 112 (one bicubic from 4K)", "video-depth-anything-small", 0, 112),
    ("video-depth-anything-tiny, official sizes (cap 1280, then 518)", "video-depth-anything-tiny", 0, None),
)


def tiled_frames(count: int, tiles: int = 3) -> torch.Tensor:
    capture = cv2.VideoCapture(str(SHARED / "data" / "real" / "tokyo_walk.mp4"))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        rgb = bgr[..., ::-1].astype(np.float32) / 255.0
        frames.append(np.tile(rgb, (tiles, tiles, 1)))
    capture.release()
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()  # (T, 3, 2160, 3840)


def temporal_error(depth: np.ndarray) -> float:
    low, high = np.percentile(depth, [2, 98])
    return float(np.abs(np.diff(depth, axis=0)).mean() / (high - low) * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    frames = tiled_frames(args.frames)
    print(f"clip: tokyo_walk.mp4, {frames.shape[0]} frames tiled 3x3 to {frames.shape[-1]}x{frames.shape[-2]}")
    print("| case | temporal none % | temporal area % | area / none | time none s | time area s | area / none |")
    print("|---|---|---|---|---|---|---|")
    for label, model, seed, size in CASES:
        results = {}
        for downscale in ("none", "area"):
            predictor = load_depth_predictor(
                model, weights=RandomWeights(seed), processing_size=size, downscale=downscale
            )
            best = float("inf")
            for _ in range(args.repeat):
                start = time.perf_counter()
                depth = predictor.predict(frames)[:, 0].numpy()
                best = min(best, time.perf_counter() - start)
            results[downscale] = (temporal_error(depth), best)
        (te_none, t_none), (te_area, t_area) = results["none"], results["area"]
        print(
            f"| {label} | {te_none:.3f} | {te_area:.3f} | {te_area / te_none:.2f} | {t_none:.1f} | {t_area:.1f} "
            f"| {t_area / t_none:.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
