"""The training-free stabiliser on shots with exact depth, and on real clips.

1. Synthetic shots with exact ground truth: the Blender sample shot (examples/sample_shot, when
   present) and a procedural numpy shot (bufferany_core.stabilize.evaluation). Per-frame flicker is
   injected into the true inverse depth (random per-frame scale and shift, a smooth random error
   field, pixel noise) and into the true normals (random per-frame tilt, noise). Printed: temporal
   error (TE) and AbsRel (one scale and shift per shot) before and after, as ratios to the flickered
   input measured in the same run, for the full stabiliser, its alignment stage alone, the causal
   streaming variant, and a naive 5-frame temporal mean without flow (what flow guidance buys).
2. Real clips (../shared/data/real/*.mp4): no real depth exists for them (no depth weights here), so
   the "truth" is a smooth pseudo-depth, the Gaussian-blurred luma of each frame, and the input is
   that map with the same injected flicker. It moves exactly with the image, so it shows how well
   flicker is removed along real motion with real flow errors (and whether moving things smear);
   it says nothing about depth accuracy. x-t slices (one row over time: flickered | stabilised |
   pseudo-truth) go to benchmarks/results/*.png.

3. Harder flicker (local errors drifting over many frames, pops, a small per-frame scale and shift;
   `add_hard_depth_flicker`) through the render's shot stabiliser (`pipeline.stabilizing.ShotStabilizer`),
   on procedural shots and on shots rendered by scripts/blender/render_synthetic_shot.py (exact depth and
   normals, a room of props, one moving, a moving camera; rendered once into
   benchmarks/results/stabilize_shots and reused), one per seed: TE, AbsRel, AbsRel inside the moving
   object, normals, and the stabiliser's time per frame over Video Depth Anything Small's (random
   weights, same resolution, same device) measured in the same run.

4. The bounded working size (`--working-size`, or alone `--working-size-only`): harder flicker on
   procedural shots at 640x360 stabilised at a small working size (160) and at the plate's own size,
   both as flicker with pixel noise at the plate's resolution and as flicker made at the working size
   and enlarged (what a render's passes carry: the model predicts at its processing size and its output
   is resized to the plate); and the stabiliser's time per frame on 1920x1080 plates at the plate's
   size and at the default working size (518), against the depth model at its processing size.

    .venv/bin/python benchmarks/bench_stabilize.py [--frames 40] [--real-frames 48] [--real-width 320]
    .venv/bin/python benchmarks/bench_stabilize.py --hard-only --hard-seeds 3 --flow dis --device cpu
    .venv/bin/python benchmarks/bench_stabilize.py --working-size-only --flow dis --device cpu --threads 1
"""

from __future__ import annotations

import argparse
import time
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import cv2
import numba
import numpy as np
import torch
from harness import add_json_option, machine, table, write_json

from bufferany_core.evaluation.ground_truth_shot import load_synthetic_shot
from bufferany_core.evaluation.metrics import align_depth, depth_accuracy
from bufferany_core.flow import load_flow_estimator
from bufferany_core.frames import FrameSequence, read_frames
from bufferany_core.models.depth.predictor import load_depth_predictor
from bufferany_core.models.weights import RandomWeights
from bufferany_core.pipeline.align import renormalise
from bufferany_core.pipeline.stabilizing import STABILIZE_WORKING_SIZE, ShotStabilizer
from bufferany_core.stabilize import StabilizeSettings, StreamingStabilizer, stabilize_clip
from bufferany_core.stabilize.trajectory import TrajectorySettings
from bufferany_core.stabilize.working_size import shrink, working_shape
from bufferany_core.testing.procedural_shot import (
    Card,
    add_depth_flicker,
    add_hard_depth_flicker,
    add_normal_flicker,
    depth_scores,
    moving_object_mask,
    normal_angle,
    normal_temporal_error,
    procedural_shot,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SHOT = REPO / "examples" / "sample_shot"
REAL_CLIPS = REPO.parent / "shared" / "data" / "real"
RESULTS = Path(__file__).resolve().parent / "results"


def load_sample_shot(frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    if not (SAMPLE_SHOT / "cameras.json").is_file():
        return None
    shot = load_synthetic_shot(SAMPLE_SHOT)
    numbers = shot.frames[:frames]
    plate = np.stack([f.rgb for f in read_frames(FrameSequence.from_input(shot.plate_pattern), numbers)])
    inverse = 1.0 / shot.depth[: len(numbers), None]
    normals = shot.normals[: len(numbers)].transpose(0, 3, 1, 2)
    return (
        plate.transpose(0, 3, 1, 2),
        inverse.astype(np.float32),
        np.ascontiguousarray(normals, dtype=np.float32),
    )


def naive_temporal_mean(clip: np.ndarray, radius: int = 2) -> np.ndarray:
    """Per-pixel mean over 2 * radius + 1 frames, no flow: the baseline that smears motion."""
    padded = np.concatenate([clip[:1].repeat(radius, 0), clip, clip[-1:].repeat(radius, 0)])
    return np.stack([padded[k : k + 2 * radius + 1].mean(0) for k in range(clip.shape[0])])


def depth_row(
    name: str, prediction: np.ndarray, truth: np.ndarray, baseline: tuple[float, float], seconds: float | None
) -> dict[str, float | None]:
    te, ar = depth_scores(prediction, truth)
    timing = f"{seconds / truth.shape[0] * 1000:7.0f} ms/frame" if seconds is not None else " " * 16
    print(
        f"  {name:<28} TE {te:.4f} ({te / baseline[0]:5.2f}x)  AbsRel {ar:.4f} ({ar / baseline[1]:5.2f}x)  {timing}"
    )
    return {
        "te": te,
        "abs_rel": ar,
        "ms_per_frame": None if seconds is None else seconds / truth.shape[0] * 1000,
    }


DEPTH_METRICS = {"te": "TE", "abs_rel": "AbsRel", "ms_per_frame": "ms/frame (wall)"}


def per_frame_abs_rel(inverse: np.ndarray, truth: np.ndarray) -> list[float]:
    """Per-frame AbsRel of an inverse depth clip (T, 1, H, W), one scale and shift for the shot."""
    return depth_accuracy(inverse[:, 0], 1.0 / truth[:, 0].astype(np.float64))["abs_rel_per_frame"]


def xt_slice(path: Path, clips: list[np.ndarray], truth: np.ndarray) -> Path:
    """Write one row over time of each clip (T, 1, H, W) side by side, time down, 4 px per frame,
    normalised to the truth's range."""
    row = truth.shape[2] // 2
    slices = [np.clip((x[:, 0, row, :] - truth.min()) / (truth.max() - truth.min()), 0, 1) for x in clips]
    picture = np.concatenate([np.repeat(s, 4, axis=0) for s in slices], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), (picture * 255).astype(np.uint8))
    return path


def run_synthetic(
    name: str,
    plate: np.ndarray,
    inverse: np.ndarray,
    normals: np.ndarray,
    estimator,
    settings,
    device,
    xt_path: Path | None = None,
) -> list[dict]:
    """Print the shot's table; return it and the normals' as report tables (`xt_path`: also write
    the x-t slice flickered | stabilised | truth there)."""
    frames, _, height, width = plate.shape
    print(f"\n{name}: {frames} frames {width}x{height}, flow {estimator.name}")
    flicker = add_depth_flicker(inverse, seed=1)
    noisy_normals = add_normal_flicker(normals, seed=2)
    baseline = depth_scores(flicker, inverse)
    rows = {
        "flickered input (baseline)": depth_row(
            "flickered input (baseline)", flicker, inverse, baseline, None
        ),
        "naive 5-frame mean, no flow": depth_row(
            "naive 5-frame mean, no flow", naive_temporal_mean(flicker), inverse, baseline, None
        ),
    }
    plate_t = torch.from_numpy(plate).to(device)
    start = time.perf_counter()
    aligned, _ = stabilize_clip(
        plate_t,
        estimator,
        depth=torch.from_numpy(flicker).to(device),
        settings=StabilizeSettings(decay=0.0),
    )
    rows["alignment only (decay 0)"] = depth_row(
        "alignment only (decay 0)",
        aligned.depth.cpu().numpy(),
        inverse,
        baseline,
        time.perf_counter() - start,
    )
    start = time.perf_counter()
    stable, stable_normals = stabilize_clip(
        plate_t,
        estimator,
        depth=torch.from_numpy(flicker).to(device),
        normals=torch.from_numpy(noisy_normals).to(device),
        settings=settings,
    )
    seconds = time.perf_counter() - start
    stable_depth = stable.depth.cpu().numpy()
    rows["stabilised (depth + normals)"] = depth_row(
        "stabilised (depth + normals)", stable_depth, inverse, baseline, seconds
    )
    streaming = StreamingStabilizer(estimator, settings=settings)
    start = time.perf_counter()
    streamed = [
        streaming.push(plate_t[k], depth=torch.from_numpy(flicker[k]).to(device))[0] for k in range(frames)
    ]
    rows["streaming (causal, depth)"] = depth_row(
        "streaming (causal, depth)",
        torch.stack(streamed).cpu().numpy(),
        inverse,
        baseline,
        time.perf_counter() - start,
    )
    n_te, n_ang = normal_temporal_error(noisy_normals, normals), normal_angle(noisy_normals, normals)
    out = stable_normals.cpu().numpy()
    print(
        f"  normals: TE {n_te:.4f} -> {normal_temporal_error(out, normals):.4f} ({normal_temporal_error(out, normals) / n_te:.2f}x), "
        f"mean angle error {n_ang:.2f} -> {normal_angle(out, normals):.2f} deg"
    )
    if xt_path is not None:
        xt_slice(xt_path, [flicker, stable_depth, inverse], inverse)
    setup = f"{frames} frames {width}x{height}, flow {estimator.name}, flicker injected into the exact depth"
    curves = {
        "abs_rel_per_frame": {
            "flickered input": per_frame_abs_rel(flicker, inverse),
            "stabilised": per_frame_abs_rel(stable_depth, inverse),
        }
    }
    return [
        table(
            title=f"Stabiliser, depth: {name}",
            setup=setup,
            baseline="flickered input (baseline)",
            metrics=DEPTH_METRICS,
            rows=rows,
            series=curves,
        ),
        table(
            title=f"Stabiliser, normals: {name}",
            setup=setup,
            baseline="flickered input",
            metrics={"te": "TE (unit normals)", "mean_angle": "mean angle error, deg"},
            rows={
                "flickered input": {"te": n_te, "mean_angle": n_ang},
                "stabilised": {
                    "te": normal_temporal_error(out, normals),
                    "mean_angle": normal_angle(out, normals),
                },
            },
        ),
    ]


def shot_stabilise(
    plate: np.ndarray,
    depth: np.ndarray | None,
    normals: np.ndarray | None,
    estimator,
    device,
    working_size: int = STABILIZE_WORKING_SIZE,
):
    """The render's stabiliser (pipeline.stabilizing.ShotStabilizer), frame by frame as the render pushes
    them, on the passes given (depth (T, 1, H, W), normals (T, 3, H, W), either may be None). Returns
    the stabilised depth, normals (None where not given) and seconds."""
    passes = [name for name, values in (("depth", depth), ("normal", normals)) if values is not None]
    stabilizer = ShotStabilizer(len(plate), passes, estimator, device, working_size=working_size)
    out: dict[int, tuple] = {}
    start = time.perf_counter()
    for k in range(len(plate)):
        frame = SimpleNamespace(rgb=plate[k].transpose(1, 2, 0))
        given_depth = None if depth is None else depth[k, 0].astype(np.float64)
        given_normals = None if normals is None else normals[k].astype(np.float64)
        for position, _, d, n in stabilizer.push(k, frame, given_depth, given_normals):
            out[position] = (d, n)
    seconds = time.perf_counter() - start
    order = [out[k] for k in range(len(plate))]
    stable_depth = None if depth is None else np.stack([d for d, _ in order])[:, None]
    stable_normals = None if normals is None else np.stack([n for _, n in order])
    return stable_depth, stable_normals, seconds


def warm_up(plate: np.ndarray, depth: np.ndarray, normals: np.ndarray, estimator, device, working_size: int = STABILIZE_WORKING_SIZE) -> None:
    """A few frames through the stabiliser before any timing: its one-time costs (numba's kernels
    loaded from their cache, or compiled on a machine's first run, about 20 s) are not per frame."""
    shot_stabilise(plate[:4], depth[:4], normals[:4], estimator, device, working_size=working_size)


def masked_abs_rel(inverse: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """AbsRel inside `mask` (T, H, W), with the one scale and shift fitted to the whole shot."""
    gt = 1.0 / truth[:, 0].astype(np.float64)
    aligned, _, _ = align_depth(inverse[:, 0], gt)
    return float((np.abs(aligned - gt) / gt)[mask].mean())


def depth_model_seconds_per_frame(
    height: int, width: int, device, frames: int = 16, processing_size: int | None = None
) -> float:
    """Video Depth Anything Small (random weights) per frame on plates of the shot's resolution, at
    `processing_size` (default: the plate's short side), one window of `frames` frames after a warm-up call."""
    predictor = load_depth_predictor(
        "video-depth-anything-small",
        weights=RandomWeights(0),
        device=device,
        processing_size=processing_size or min(height, width),
    )
    clip = torch.rand(frames, 3, height, width, device=device)
    with torch.inference_mode():
        predictor.predict(clip[:2])
        start = time.perf_counter()
        predictor.predict(clip)
    return (time.perf_counter() - start) / frames


HARD_SEEDS_HELP = "seeds of the harder flicker (and of the moving card's speed / the rendered scene), one shot each"
BLENDER_CACHE = RESULTS / "stabilize_shots"  # rendered once, reused (ignored by git)


def hard_cards(seed: int) -> tuple[Card, ...]:
    rng = np.random.default_rng(100 + seed)
    return (
        Card(z=3.0, x_range=(-1.6, -0.4), y_range=(-0.8, 0.5), tint=(1.0, 0.7, 0.5)),
        Card(z=4.5, x_range=(0.3, 1.5), y_range=(-1.2, 0.2), velocity=(float(rng.uniform(-0.05, -0.02)), 0.0), tint=(0.5, 0.8, 1.0)),
        Card(z=6.0, x_range=(-0.5, 0.9), y_range=(0.4, 1.4), tint=(0.7, 1.0, 0.6)),
    )


def procedural_hard_shot(seed: int, frames: int, height: int, width: int):
    """(plate, inverse depth, normals, moving-object mask) of a procedural shot: three cards, one moving,
    under a trucking, dollying, panning camera."""
    cards = hard_cards(seed)
    kwargs = dict(frames=frames, height=height, width=width)
    shot = procedural_shot(cards=cards, **kwargs)
    return shot.plate, shot.inverse_depth, shot.normals, moving_object_mask(kwargs, cards)


def blender_moving_mask(depth: np.ndarray, poses: np.ndarray, intrinsics: np.ndarray, movers: dict) -> np.ndarray:
    """(T, H, W) bool: pixels on a moving object of a rendered shot (scripts/blender/render_synthetic_shot.py),
    dilated by 2 px. A pixel's world point (exact depth, camera pose) is carried to frames 6, 12 and 24
    before and after; it is on a mover when, on one of them, as a static point it would be seen more
    than 5% in front of the surface there (impossible: it must have moved) while carried by the mover it
    lands on the surface seen there (within 1%). Parts of a mover whose motion never shows that way are
    missed: the mask is a subset of the moving object."""
    frames, height, width = depth.shape
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    fx, fy, cx, cy = intrinsics[0, 0], intrinsics[1, 1], intrinsics[0, 2], intrinsics[1, 2]
    matrices = [np.array([m[str(f)] for f in sorted(m, key=int)]) for m in movers.values()]

    def world(k: int) -> np.ndarray:  # (4, H*W) homogeneous world points of frame k (camera looks down -z)
        z = depth[k]
        camera = np.stack([(xs - cx) / fx * z, -(ys - cy) / fy * z, -z, np.ones_like(z)]).reshape(4, -1)
        return poses[k] @ camera

    def seen_minus_point(points: np.ndarray, j: int) -> np.ndarray:
        """(9, N): relative depth (seen - point) / point between points (4, N) and the surface frame j
        sees at the 3 x 3 pixels around where they project (so grazing surfaces do not fail on
        rounding); nan outside the frame."""
        camera = np.linalg.inv(poses[j]) @ points
        z = -camera[2]
        u = np.round(fx * camera[0] / np.maximum(z, 1e-9) + cx - 0.5).astype(int)
        v = np.round(-fy * camera[1] / np.maximum(z, 1e-9) + cy - 0.5).astype(int)
        ok = (z > 0) & (u >= 1) & (u < width - 1) & (v >= 1) & (v < height - 1)
        out = np.full((9, z.size), np.nan)
        for i, (dv, du) in enumerate((dv, du) for dv in (-1, 0, 1) for du in (-1, 0, 1)):
            out[i, ok] = (depth[j][v[ok] + dv, u[ok] + du] - z[ok]) / z[ok]
        return out

    mask = np.zeros((frames, height, width), bool)
    for k in range(frames):
        points = world(k)
        # frames far enough for the motion to show in depth, near enough to see the same surfaces
        for j in [k + d for d in (-24, -12, -6, 6, 12, 24) if 0 <= k + d < frames]:
            # a static point would be seen in front of the surface there: it cannot be static
            closest = np.nan_to_num(seen_minus_point(points, j), nan=np.inf).min(axis=0)
            impossible = np.isfinite(closest) & (closest > 0.05)
            for mover in matrices:
                riding = np.abs(seen_minus_point(mover[j] @ np.linalg.inv(mover[k]) @ points, j))
                mask[k] |= (impossible & (np.nan_to_num(riding, nan=np.inf).min(axis=0) <= 0.01)).reshape(height, width)
    grown = mask.copy()
    for axis in (1, 2):
        for step in (-2, -1, 1, 2):
            grown |= np.roll(mask, step, axis=axis)
    return grown


def blender_hard_shot(seed: int, frames: int, height: int, width: int, samples: int):
    """(plate, inverse depth, normals, moving-object mask) of a shot rendered by
    scripts/blender/render_synthetic_shot.py (a room of props, one moving, a moving camera), cached."""
    from bench_training_miniature import render_shot

    folder, seconds = render_shot(BLENDER_CACHE, seed=seed, frames=frames, width=width, height=height, samples=samples)
    if seconds is not None:
        print(f"  rendered Blender shot seed {seed} into {folder} ({seconds:.0f} s)")
    shot = load_synthetic_shot(folder)
    plate = np.stack([f.rgb for f in read_frames(FrameSequence.from_input(shot.plate_pattern), shot.frames)])
    mask = blender_moving_mask(shot.depth, shot.camera_to_world, shot.intrinsics, shot.cameras["moving_objects_to_world"])
    return (
        np.ascontiguousarray(plate.transpose(0, 3, 1, 2), dtype=np.float32),
        (1.0 / shot.depth[:, None]).astype(np.float32),
        np.ascontiguousarray(shot.normals.transpose(0, 3, 1, 2), dtype=np.float32),
        mask,
    )


def run_hard(shots: list[tuple[str, int, tuple]], estimator, device) -> list[dict]:
    """Harder flicker on shots with exact depth (`shots`: name, flicker seed, (plate, inverse depth,
    normals, moving-object mask)): local errors drifting over frames, pops (regions jumping for a frame
    or two), a small per-frame scale and shift, next to a moving object under a moving camera."""
    frames, _, height, width = shots[0][2][0].shape
    model_spf = depth_model_seconds_per_frame(height, width, device)
    print(f"\nHarder flicker: {frames} frames {width}x{height}, flow {estimator.name}; depth model "
          f"(video-depth-anything-small, random weights, {device}) {model_spf * 1000:.0f} ms/frame")
    rows, ratios = {}, []
    warm_up(*shots[0][2][:3], estimator, device)
    for name, seed, (plate, inverse, normals, mask) in shots:
        flicker = add_hard_depth_flicker(inverse, seed=seed)
        noisy_normals = add_normal_flicker(normals, seed=seed + 50)
        stable, stable_normals, seconds = shot_stabilise(plate, flicker, noisy_normals, estimator, device)
        before = hard_scores(flicker, noisy_normals, inverse, normals, mask)
        after = hard_scores(stable, stable_normals, inverse, normals, mask)
        (te0, ar0, m0, nte0, na0), (te1, ar1, m1, nte1, na1) = before.values(), after.values()
        cost = seconds / len(plate) / model_spf
        ratios.append((te1 / te0, ar1 / ar0, m1 / m0, cost))
        print(
            f"  {name}: TE {te0:.4f} -> {te1:.4f} ({te1 / te0:.2f}x)  AbsRel {ar0:.4f} -> {ar1:.4f} ({ar1 / ar0:.2f}x)  "
            f"moving object ({mask.mean():.0%} of pixels) AbsRel {m0:.4f} -> {m1:.4f} ({m1 / m0:.2f}x)  normals TE "
            f"{nte1 / nte0:.2f}x, angle {na0:.2f} -> {na1:.2f} deg  stabiliser {seconds / len(plate) * 1000:.0f} ms/frame "
            f"= {cost:.2f}x the depth model",
            flush=True,
        )
        rows[name] = {"flickered input": {**before, "cost": None}, "stabilised": {**after, "cost": cost}}
    worst = np.max(np.array(ratios), axis=0)
    print(
        f"  worst over shots: TE {worst[0]:.2f}x (goal <= 0.15), AbsRel {worst[1]:.2f}x (goal <= 0.5), moving object AbsRel "
        f"{worst[2]:.2f}x (goal <= 1), cost {worst[3]:.2f}x the depth model (goal <= 0.25)"
    )
    return [
        table(
            title=f"Stabiliser on harder flicker (drifting local errors, pops, moving object): {name}",
            setup=f"{frames} frames {width}x{height}, flow {estimator.name}, render's shot stabiliser; "
            f"cost = stabiliser time per frame / video-depth-anything-small (random weights) time per frame",
            baseline="flickered input",
            metrics={**HARD_METRICS, "cost": "cost vs depth model"},
            rows=shot_rows,
        )
        for name, shot_rows in rows.items()
    ]


HARD_METRICS = {
    "te": "TE", "abs_rel": "AbsRel", "moving_abs_rel": "AbsRel in moving object",
    "normal_te": "normals TE", "normal_angle": "normal angle, deg",
}


def hard_scores(depth: np.ndarray, normals: np.ndarray, inverse: np.ndarray, true_normals: np.ndarray, mask: np.ndarray) -> dict:
    """A depth clip's TE, AbsRel, AbsRel inside the moving object and its normals' TE and mean angle
    error against the truth (the keys of HARD_METRICS, in order)."""
    te, ar = depth_scores(depth, inverse)
    return {
        "te": te,
        "abs_rel": ar,
        "moving_abs_rel": masked_abs_rel(depth, inverse, mask),
        "normal_te": normal_temporal_error(normals, true_normals),
        "normal_angle": normal_angle(normals, true_normals),
    }


def flicker_made_at(size: int, clip: np.ndarray, flicker, *, unit: bool = False) -> np.ndarray:
    """`flicker(small)` (a clip (T, C, H, W) -> its flickered copy) made on the clip shrunk to `size` px
    on the short side, its change enlarged back and added to the full clip (renormalised when `unit`):
    the flicker of a render's passes, predicted at the model's processing size and resized to the plate."""
    frames, _, height, width = clip.shape
    shape = working_shape(height, width, size)
    small = np.stack([shrink(np.ascontiguousarray(f.transpose(1, 2, 0)), shape).reshape(*shape, -1) for f in clip])
    small = small.transpose(0, 3, 1, 2)
    change = flicker(np.ascontiguousarray(small, dtype=np.float32)) - small
    # bilinear, as the models' outputs are resized to the plate
    enlarged = [cv2.resize(c.transpose(1, 2, 0), (width, height), interpolation=cv2.INTER_LINEAR) for c in change]
    out = clip + np.stack([e.reshape(height, width, -1) for e in enlarged]).transpose(0, 3, 1, 2)
    return (renormalise(out, axis=1) if unit else out).astype(np.float32)


def run_working_size_quality(seeds: int, frames: int, height: int, width: int, small: int, estimator, device) -> list[dict]:
    """Harder flicker on procedural shots at height x width, stabilised at the plate's size and at a
    working size of `small`: the departure the bounded working size costs, for flicker with pixel noise
    at the plate's resolution and for flicker made at the working size (as a render's passes)."""
    full = min(height, width)  # the working size at which the plate goes through as it is
    print(f"\nWorking size, quality: {frames} frames {width}x{height}, flow {estimator.name}; stabilised at {full} (the plate's size) and at {small}")
    tables, departures = [], []
    for seed in range(seeds):
        plate, inverse, normals, mask = procedural_hard_shot(seed, frames, height, width)
        kinds = {
            "flicker at the plate's resolution": (
                add_hard_depth_flicker(inverse, seed=seed), add_normal_flicker(normals, seed=seed + 50)
            ),
            f"flicker made at {small} px, enlarged": (
                flicker_made_at(small, inverse, partial(add_hard_depth_flicker, seed=seed)),
                flicker_made_at(small, normals, partial(add_normal_flicker, seed=seed + 50), unit=True),
            ),
        }
        for kind, (flicker, noisy_normals) in kinds.items():
            rows = {"flickered input": {**hard_scores(flicker, noisy_normals, inverse, normals, mask), "ms_per_frame": None}}
            for label, size in ((f"stabilised at {full} (plate size)", full), (f"stabilised at {small}", small)):
                stable, stable_normals, seconds = shot_stabilise(plate, flicker, noisy_normals, estimator, device, working_size=size)
                rows[label] = {**hard_scores(stable, stable_normals, inverse, normals, mask), "ms_per_frame": seconds / frames * 1000}
            base, at_full, at_small = rows.values()
            departures.append([at_small[k] / at_full[k] for k in HARD_METRICS])
            print(
                f"  procedural seed {seed}, {kind}: "
                + "  ".join(
                    f"{HARD_METRICS[k]} {at_full[k] / base[k]:.2f}x -> {at_small[k] / base[k]:.2f}x" for k in HARD_METRICS
                )
                + f"  ({at_full['ms_per_frame']:.0f} -> {at_small['ms_per_frame']:.0f} ms/frame)",
                flush=True,
            )
            tables.append(
                table(
                    title=f"Stabiliser working size {small} vs the plate's size: procedural shot, seed {seed}, {kind}",
                    setup=f"{frames} frames {width}x{height}, flow {estimator.name}, harder flicker, render's shot stabiliser",
                    baseline="flickered input",
                    metrics={**HARD_METRICS, "ms_per_frame": "ms/frame (wall)"},
                    rows=rows,
                )
            )
    worst = np.max(np.array(departures), axis=0)
    print("  worst departure (working size / plate size): " + "  ".join(f"{HARD_METRICS[k]} {w:.2f}x" for k, w in zip(HARD_METRICS, worst, strict=True)))
    return tables


def run_working_size_cost(frames: int, estimator, device, height: int = 1080, width: int = 1920) -> dict:
    """The stabiliser's time per frame on a height x width procedural shot of `frames` frames (harder
    flicker) at the plate's size and at the default working size, and the depth model's at its default
    processing size on the same plates (the ratio the render's cost is made of)."""
    reach = TrajectorySettings().reach
    plate, inverse, normals, _ = procedural_hard_shot(0, frames, height, width)
    flicker, noisy_normals = add_hard_depth_flicker(inverse, seed=0), add_normal_flicker(normals, seed=50)
    model = depth_model_seconds_per_frame(height, width, device, frames=min(frames, 16), processing_size=STABILIZE_WORKING_SIZE)
    rows = {"depth model at 518 (video-depth-anything-small)": {"ms_per_frame": model * 1000}}
    print(f"\nWorking size, cost: {frames} frames {width}x{height}, flow {estimator.name}; depth model at 518 {model * 1000:.0f} ms/frame")
    warm_up(plate, flicker, noisy_normals, estimator, device)
    for label, size in ((f"stabiliser at the plate's size ({min(height, width)})", min(height, width)), (f"stabiliser at {STABILIZE_WORKING_SIZE}", STABILIZE_WORKING_SIZE)):
        *_, seconds = shot_stabilise(plate, flicker, noisy_normals, estimator, device, working_size=size)
        rows[label] = {"ms_per_frame": seconds / frames * 1000}
        print(f"  {label}: {seconds / frames * 1000:.0f} ms/frame = {seconds / frames / model:.2f}x the depth model", flush=True)
    return table(
        title=f"Stabiliser cost at {width}x{height}: plate size vs working size {STABILIZE_WORKING_SIZE}",
        setup=f"{frames} frames (a frame's support is the shot's frames within {reach} of it: all {2 * reach} for the "
        f"middle {max(0, frames - 2 * reach)}), flow {estimator.name}, "
        f"harder flicker on a procedural shot; the model at its default processing size on the same plates",
        baseline="depth model at 518 (video-depth-anything-small)",
        metrics={"ms_per_frame": "ms/frame (wall)"},
        rows=rows,
    )


def pseudo_depth(rgb: np.ndarray) -> np.ndarray:
    luma = rgb @ np.array([0.2126, 0.7152, 0.0722], dtype=np.float32)
    return cv2.GaussianBlur(luma, (0, 0), sigmaX=3.0)[None] + 0.1


def run_real(path: Path, frames: int, width: int, estimator, settings, device, results: Path) -> dict:
    sequence = FrameSequence.from_input(path)
    numbers = sequence.frames[:frames]
    plates = []
    for frame in read_frames(sequence, numbers):
        h, w = frame.rgb.shape[:2]
        plates.append(cv2.resize(frame.rgb, (width, round(h * width / w)), interpolation=cv2.INTER_AREA))
    plate = np.stack(plates).transpose(0, 3, 1, 2)
    truth = np.stack([pseudo_depth(p) for p in plates]).astype(np.float32)
    flicker = add_depth_flicker(truth, seed=3)
    start = time.perf_counter()
    stable, _ = stabilize_clip(
        torch.from_numpy(plate).to(device),
        estimator,
        depth=torch.from_numpy(flicker).to(device),
        settings=settings,
    )
    seconds = time.perf_counter() - start
    result = stable.depth.cpu().numpy()
    print(
        f"\n{path.name}: {len(numbers)} frames at {plate.shape[3]}x{plate.shape[2]}, pseudo-depth = blurred luma (NOT depth)"
    )
    baseline = depth_scores(flicker, truth)
    rows = {
        "flickered pseudo-depth": depth_row("flickered pseudo-depth", flicker, truth, baseline, None),
        "naive 5-frame mean, no flow": depth_row(
            "naive 5-frame mean, no flow", naive_temporal_mean(flicker), truth, baseline, None
        ),
        "stabilised": depth_row("stabilised", result, truth, baseline, seconds),
    }
    out = xt_slice(results / f"xt_{path.stem}.png", [flicker, result, truth], truth)
    print(f"  x-t slice of row {truth.shape[2] // 2} (flickered | stabilised | pseudo-truth): {out}")
    return table(
        title=f"Stabiliser on a real clip: {path.name} (pseudo-depth = blurred luma, NOT depth)",
        setup=f"{len(numbers)} frames at {plate.shape[3]}x{plate.shape[2]}, flow {estimator.name}",
        baseline="flickered pseudo-depth",
        metrics=DEPTH_METRICS,
        rows=rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--real-frames", type=int, default=48)
    parser.add_argument("--real-width", type=int, default=320)
    parser.add_argument("--flow", default="auto")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--real-clips", type=int, default=None, help="at most this many real clips (default: all)"
    )
    parser.add_argument("--hard-seeds", type=int, default=3, help=HARD_SEEDS_HELP)
    parser.add_argument("--hard-frames", type=int, default=48)
    parser.add_argument("--hard-only", action="store_true", help="only the harder-flicker shots")
    parser.add_argument(
        "--no-blender", action="store_true",
        help=f"harder flicker on procedural shots only (the rendered ones take minutes each; cached in {BLENDER_CACHE})",
    )
    parser.add_argument("--blender-samples", type=int, default=4, help="Cycles samples per pixel of the rendered shots")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="CPU threads for the model (torch) and the stabiliser (OpenCV, numba) alike (default: each "
        "library's own; 1 keeps busy-CPU thread hand-offs out of the timings)",
    )
    parser.add_argument("--working-size", action="store_true", help="also measure the bounded working size (section 4)")
    parser.add_argument("--working-size-only", action="store_true", help="only the working size's measurements")
    parser.add_argument("--ws-seeds", type=int, default=2, help="procedural shots of the working size's quality section")
    parser.add_argument("--ws-plate", default="640x360", help="their plate size, WIDTHxHEIGHT")
    parser.add_argument("--ws-small", type=int, default=160, help="the working size compared with the plate's")
    parser.add_argument(
        "--ws-cost-frames", type=int, default=56,
        help="frames of the 1920x1080 cost shot (its middle frames have the filter's whole support: 2 x 20 + 1 frames or more)",
    )
    add_json_option(parser)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        cv2.setNumThreads(args.threads)
        numba.set_num_threads(args.threads)
    results = args.json.parent if args.json else RESULTS  # x-t slices go beside the JSON
    device = torch.device(args.device)
    estimator = load_flow_estimator(args.flow, device=device)
    settings = StabilizeSettings()
    print(f"Machine: {machine(args.device)}")
    print(
        "TE: temporal gradient error, AbsRel: shot-aligned (bufferany_core.evaluation.metrics: one scale and shift "
        "per shot in disparity, compared as depth); ratios vs the flickered input; ms/frame on this machine"
    )
    tables, written = [], []
    if args.working_size or args.working_size_only:
        ws_width, ws_height = (int(v) for v in args.ws_plate.lower().split("x"))
        tables += run_working_size_quality(args.ws_seeds, args.hard_frames, ws_height, ws_width, args.ws_small, estimator, device)
        tables.append(run_working_size_cost(args.ws_cost_frames, estimator, device))
    if args.working_size_only:
        write_json(args.json, machine=machine(args.device), tables=tables)
        return
    if args.hard_seeds:
        hard = [
            (f"procedural shot, seed {seed}", seed, procedural_hard_shot(seed, args.hard_frames, 120, 160))
            for seed in range(args.hard_seeds)
        ]
        if not args.no_blender:
            hard += [
                (f"Blender shot, seed {seed}", seed, blender_hard_shot(seed, args.hard_frames, 120, 160, args.blender_samples))
                for seed in range(args.hard_seeds)
            ]
        tables += run_hard(hard, estimator, device)
    sample = None if args.hard_only else load_sample_shot(args.frames)
    if sample is None:
        print(f"\n(no Blender sample shot at {SAMPLE_SHOT}; run examples/make_sample_shot.sh)")
    else:
        tables += run_synthetic(
            "Blender sample shot (examples/sample_shot)",
            *sample,
            estimator,
            settings,
            device,
            xt_path=results / "xt_sample_shot.png",
        )
        written.append(results / "xt_sample_shot.png")
    if not args.hard_only:
        shot = procedural_shot(frames=args.frames, height=120, width=160)
        tables += run_synthetic(
            "Procedural numpy shot", shot.plate, shot.inverse_depth, shot.normals, estimator, settings, device
        )
    for clip in sorted(REAL_CLIPS.glob("*.mp4"))[: 0 if args.hard_only else args.real_clips]:
        tables.append(run_real(clip, args.real_frames, args.real_width, estimator, settings, device, results))
        written.append(results / f"xt_{clip.stem}.png")
    write_json(
        args.json,
        machine=machine(args.device),
        tables=tables,
        files={
            path.name: f"x-t slice, {path.stem[3:]}: flickered | stabilised | truth (time down)"
            for path in written
        },
    )


if __name__ == "__main__":
    main()
