"""How far each of bufferany's three departures from the official Marigold-E2E-FT preprocessing moves
the normals (issue 25; docs/models.md "Preprocessing: ours and the official one").

Variants, each the official preprocessing with ONE departure switched to ours, then all of ours:
  official                      uint8 resize, int() sizes, VAE floors + stretch back, no renormalisation
  + float resize                frames resized in float, never rounded to 8 bit
  + pad-to-8 and crop           edge-replicated padding to a multiple of 8, cropped after decoding
  + renormalise                 unit normals after the final resize (no clip)
  bufferany (default)           all three (and rounded sizes)
Measured as the mean and max angle (degrees) to the golden's `native_*` / `res64_*` normals (the
official code's output for the tiny stand-in folder), and on real frames to the official variant.

    python benchmarks/bench_normal_preprocessing.py [--frames 4] [--clip ../shared/data/real/davis_rollercoaster.mp4]
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from bufferany_core.models.normal import load_normal_predictor
from bufferany_core.models.normal.preprocess import PREPROCESSINGS

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / ".." / "shared" / "reference"
OFFICIAL = PREPROCESSINGS["official"]
VARIANTS = {
    "official": OFFICIAL,
    "+ float resize": dataclasses.replace(OFFICIAL, quantize=False),
    "+ pad-to-8 and crop": dataclasses.replace(OFFICIAL, fit="pad"),
    "+ renormalise": dataclasses.replace(OFFICIAL, renormalize=True),
    "bufferany (default)": PREPROCESSINGS["bufferany"],
}


def angles(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Degrees between the (N,3,H,W) normal fields, per pixel (lengths ignored)."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.degrees(np.arccos(np.clip((a * b).sum(axis=1), -1.0, 1.0)))


def read_clip(path: Path, count: int, size: tuple[int, int]) -> np.ndarray:
    """`count` contiguous frames from the clip's middle, resized to `size` (h, w): (T, H, W, 3) uint8."""
    capture = cv2.VideoCapture(str(path))
    total = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    capture.set(cv2.CAP_PROP_POS_FRAMES, max(0, total // 2 - count // 2))
    frames = []
    for _ in range(count):
        ok, bgr = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(cv2.resize(bgr, size[::-1], interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB))
    capture.release()
    if not frames:
        raise SystemExit(f"could not read frames from {path}")
    return np.stack(frames)


def run(weights: Path, rgb: np.ndarray, processing_size: int, preprocessing) -> np.ndarray:
    predictor = load_normal_predictor(
        "marigold-e2e-ft-normals", weights=weights, processing_size=processing_size, preprocessing=preprocessing
    )
    frames = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255.0
    out = predictor.predict(frames).numpy()
    out[:, 0] *= -1.0  # back to the model's (and the golden's) x-left axes
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip", type=Path, default=ROOT / ".." / "shared" / "data" / "real" / "davis_rollercoaster.mp4")
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--size", type=int, nargs=2, default=(90, 160), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with np.load(REFERENCE / "marigold_e2e_golden.npz") as data:
        golden = {key: data[key] for key in data.files}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "marigold-e2e-ft-normals"
        shutil.copytree(REFERENCE / "marigold_e2e_tiny", weights)
        for path in [weights, *weights.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        clip = read_clip(args.clip, args.frames, tuple(args.size))
        cases = [
            (f"golden native {golden['rgb_uint8'].shape[1]}x{golden['rgb_uint8'].shape[2]}", golden["rgb_uint8"], 0, golden["native_normal"]),
            ("golden res64", golden["rgb_uint8"], 64, golden["res64_normal"]),
            (f"{args.clip.stem} {clip.shape[1]}x{clip.shape[2]} native", clip, 0, None),
            (f"{args.clip.stem} res64", clip, 64, None),
        ]  # fmt: skip
        header = f"{'variant':22s}" + "".join(f" | {name:>30s}" for name, *_ in cases)
        print("angle to the official output, degrees: mean / max (golden: the official code; clip: our official mode)")
        print(header)
        print("-" * len(header))
        results = {name: [] for name in VARIANTS}
        for _case, rgb, size, expected in cases:
            reference = expected if expected is not None else run(weights, rgb, size, OFFICIAL)
            for name, variant in VARIANTS.items():
                error = angles(run(weights, rgb, size, variant), reference)
                results[name].append(f"{error.mean():8.3f} / {error.max():8.3f}")
        for name, cells in results.items():
            print(f"{name:22s}" + "".join(f" | {cell:>30s}" for cell in cells))


if __name__ == "__main__":
    main()
