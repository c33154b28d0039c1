"""Farm schedule against the official one (Video Depth Anything's infer_video_depth), on real frames.

Three clips: the 64 frames of `../shared/reference/vda_shot_golden.npz` and the first frames of each
`../shared/data/real/*.mp4`, downscaled to a width of 200 (CPU-sized), written as 8-bit PNG sequences.
Each renders through `run_render` with Video Depth Anything Small on the reference weight rule
(`random:0`), depth processing size 112, once with `--schedule official` and once with the default
`--schedule farm` (same weights, one model load). Figures per clip:
- difference: the farm render after ONE least-squares scale and shift for the whole shot against the
  official render, max and mean of |farm - official| in % of the official render's range;
- temporal change of each render: mean |d(t+1) - d(t)| over the shot in % of its range (the clips move,
  so this is not zero for a perfect render; what matters is how the two schedules compare);
- wall time of each render (one process, 2 CPU threads).

    .venv/bin/python benchmarks/bench_schedules.py [--frames 64] [--width 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import torch

from bufferany_core.conventions import DEPTH_CHANNEL
from bufferany_core.frames import read_channels
from bufferany_core.jobs import RenderJob
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.render import run_render

SHARED = Path(__file__).resolve().parents[2] / "shared"


def golden_frames() -> np.ndarray:
    with np.load(SHARED / "reference" / "vda_shot_golden.npz") as golden:
        return golden["vda_shot_frames"]


def movie_frames(path: Path, count: int, width: int) -> np.ndarray:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while len(frames) < count:
        ok, bgr = capture.read()
        if not ok:
            break
        height = round(bgr.shape[0] * width / bgr.shape[1])
        frames.append(cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)[..., ::-1])
    capture.release()
    return np.stack(frames)


def write_pngs(folder: Path, frames: np.ndarray) -> str:
    folder.mkdir(parents=True)
    for i, rgb in enumerate(frames, start=1):
        out = oiio.ImageOutput.create("png")
        out.open(str(folder / f"clip.{i:04d}.png"), oiio.ImageSpec(rgb.shape[1], rgb.shape[0], 3, "uint8"))
        out.write_image(np.ascontiguousarray(rgb))
        out.close()
    return str(folder / "clip.####.png")


def render(pattern: str, output: str, schedule: str, cache: PredictorCache, count: int) -> tuple[np.ndarray, float]:
    job = RenderJob(
        input=pattern, output=output, passes=("depth",), depth_model="video-depth-anything-small",
        weights="random:0", device="cpu", depth_processing_size=112, schedule=schedule,
    )
    start = time.perf_counter()
    run_render(job, predictors=cache)
    seconds = time.perf_counter() - start
    depth = np.stack([read_channels(output.replace("####", f"{n:04d}"), [DEPTH_CHANNEL])[..., 0] for n in range(1, count + 1)])
    return depth.astype(np.float64), seconds


def temporal_change(depth: np.ndarray) -> float:
    span = depth.max() - depth.min()
    return float(np.abs(np.diff(depth, axis=0)).mean() / span * 100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=64, help="frames per real clip (default 64)")
    parser.add_argument("--width", type=int, default=200, help="width the real clips are scaled to (default 200)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    clips = {"golden (rollercoaster)": golden_frames()}
    for movie in sorted((SHARED / "data" / "real").glob("*.mp4")):
        clips[movie.stem] = movie_frames(movie, args.frames, args.width)
    cache = PredictorCache()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, frames in clips.items():
            folder = Path(tmp) / name.split()[0]
            pattern = write_pngs(folder / "plate", frames)
            official, t_official = render(pattern, str(folder / "official" / "d.####.exr"), "official", cache, len(frames))
            farm, t_farm = render(pattern, str(folder / "farm" / "d.####.exr"), "farm", cache, len(frames))
            design = np.stack([farm.ravel(), np.ones(farm.size)], axis=1)
            scale, shift = np.linalg.lstsq(design, official.ravel(), rcond=None)[0]
            diff = np.abs(scale * farm + shift - official) / (official.max() - official.min()) * 100
            rows.append((name, frames.shape, diff.max(), diff.mean(), temporal_change(official),
                         temporal_change(farm), t_official, t_farm))
    header = (f"{'clip':<24}{'frames':>16}{'max diff %':>12}{'mean diff %':>12}{'temp. official %':>18}"
              f"{'temp. farm %':>14}{'official s':>12}{'farm s':>9}")
    print(header)
    for name, shape, dmax, dmean, tof, tfa, sof, sfa in rows:
        frames = f"{shape[0]}x{shape[2]}x{shape[1]}"
        print(f"{name:<24}{frames:>16}{dmax:>12.3f}{dmean:>12.3f}{tof:>18.3f}{tfa:>14.3f}{sof:>12.1f}{sfa:>9.1f}")


if __name__ == "__main__":
    main()
