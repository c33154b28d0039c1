"""A miniature of Buffer Anytime's experiment (issue 23): label-free fine-tuning of temporal blocks on
unlabeled rendered clips, measured against exact depth on held-out scenes.

1. Corpus: shots rendered by scripts/blender/render_synthetic_shot.py (Cycles, CPU; in the bpy
   environment .venv-blender) with many seeds: a room of textured props, a moving camera, a moving
   object. Three disjoint seed ranges: PRIOR scenes (labels used, to train the image prior), TRAIN
   scenes (plates only: the unlabeled fine-tuning corpus) and EVAL scenes (held out; their depth is
   used for evaluation only). Rendered once into --corpus and reused.
2. Image prior: a tiny Depth Anything V2, trained per frame WITH labels on the PRIOR scenes
   (affine-invariant loss on inverse depth). It never sees the TRAIN or EVAL scenes; like real
   image models it flickers on video (noise in the plate, content moving through its receptive field).
3. Buffer Anytime: `bufferany_training.trainer.train` (what `bufferany-train` runs) with
   training/configs/depth.toml at miniature sizes: frozen ViT, temporal blocks (+ head copy),
   w_reg * L_reg + L_stable with DIS flows, cycle and edge masks; no labels. Once per training seed.
4. Evaluation on the EVAL scenes, with bufferany_core.evaluation.metrics: AbsRel and delta1 (one
   scale and shift per shot, disparity space), temporal gradient error TE and OPW, for the prior,
   the prior + the training-free stabiliser (bufferany_core.stabilize), the fine-tuned model per
   seed, and the ablations (no cycle mask, no edge mask, w_reg 0.1 and 3, the paper's L_stable on
   raw predictions), each per seed. Ratios are against the prior, per seed: mean, std and values.

    .venv/bin/python benchmarks/bench_training_miniature.py            # the full miniature
    .venv/bin/python benchmarks/bench_training_miniature.py --quick    # a few-minute smoke run
    .venv/bin/python benchmarks/bench_training_miniature.py --normals  # the same for normals
    .venv/bin/python benchmarks/bench_training_miniature.py --normals --add-normal-variants \
        --set 'normal_variants=["camera turn undone"]'  # new variants beside the committed normal run

--normals runs the normal miniature on the same corpus: a tiny Marigold-E2E-FT-style prior (the
"tiny" UNet and VAE tables, trained end to end with the rendered camera-space normals of the PRIOR
scenes), then training/configs/normal.toml at miniature sizes (latent L_reg + L_stable on decoded
normals with deferred decode), evaluated on the EVAL scenes by mean angle error, OPW on normals and
a normal TE. Its figures go under the `normals` key of the same JSON (the depth figures are kept)
and a section of the report; a depth run keeps the `normals` key in turn.

Writes --out (default benchmarks/results/training_miniature.json), a Markdown report beside it
(training_miniature.md: table, settings, timings) and the curves (training_miniature_curves.png:
loss and held-out TE over the fine-tuning steps).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from bufferany_training.config import TrainConfig

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import add_json_option, machine, table, write_json  # noqa: E402

BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"
RENDER_SCRIPT = REPO / "scripts" / "blender" / "render_synthetic_shot.py"
PRIOR_SEED0, TRAIN_SEED0, EVAL_SEED0 = 1000, 0, 500  # disjoint scene seed ranges
MAIN = "Buffer Anytime (depth.toml)"
ABLATIONS = {
    "no cycle mask": {"flow.cycle_mask": False},
    "no edge mask": {"flow.edge_mask": False},
    "w_reg 0.1": {"loss.w_reg": 0.1},
    "w_reg 3": {"loss.w_reg": 3.0},
    "paper-exact L_stable (raw predictions)": {"loss.stable_space": "raw"},
}
NORMAL_MAIN = "Buffer Anytime (normal.toml)"
NORMAL_PRIOR = "image prior (per frame)"
NORMAL_VARIANTS = {  # normal.toml ships depth.toml's balance and optimiser; the paper's recipe beside it
    "paper's recipe (w_reg 1, lr 1e-5 constant)": {
        "loss.w_reg": 1.0, "optim.lr": 1e-5, "optim.schedule": "constant", "optim.grad_clip": 0.0,
    },
    "w_reg 1 (lr 1e-3 cosine, clip 1)": {"loss.w_reg": 1.0},
    "w_reg 0.1 (lr 1e-3 cosine, clip 1)": {"loss.w_reg": 0.1},
    "w_reg 0.15": {"loss.w_reg": 0.15},
    "300 steps": {"optim.iterations": 300},  # the cosine schedule stretched to 300
    "16-frame clips": {"data.frames": 16},  # the whole held-out shot, as the evaluation's window sees it
    # L_stable with the camera's turn between the frames undone, fitted to the model's own normals
    # or to the frozen prior's
    "camera turn undone": {"loss.stable_rotation": "video"},
    "camera turn undone, 300 steps": {"loss.stable_rotation": "video", "optim.iterations": 300},
    "camera turn undone (the prior's turn)": {"loss.stable_rotation": "prior"},
}
FIXED_LENGTH = ("300 steps", "camera turn undone, 300 steps")  # not smoke runs: --quick leaves them out


@dataclass
class Settings:
    prior_shots: int = 5
    train_shots: int = 10
    eval_shots: int = 3
    frames: int = 16  # rendered frames per shot
    width: int = 128
    height: int = 72
    samples: int = 4  # Cycles samples per pixel: a little render noise, as in real plates
    crop: tuple[int, int] = (56, 98)  # training crops (multiples of 14)
    processing: int = 70  # evaluation: model input height
    prior_steps: int = 1000  # 400 left a prior whose fine-tuning lost AbsRel (L_reg spikes)
    prior_lr: float = 5e-4
    steps: int = 150  # fine-tuning steps per run
    clip_frames: int = 8  # frames per training clip
    lr: float | None = None  # None: depth.toml's optim.lr, as bufferany-train uses it
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    ablation_seeds: list[int] = field(default_factory=lambda: [0, 1, 2])  # also --normals' variants
    ablations: list[str] = field(default_factory=lambda: list(ABLATIONS))
    curve_points: int = 5  # checkpoints per main run evaluated for the TE-over-steps curve
    workers: int = 1
    extra: dict = field(default_factory=dict)  # more config overrides for every run
    # --normals: the normal prior's supervised training and the fine-tuning crops (multiples of 8)
    normal_prior_steps: int = 1000
    normal_prior_lr: float = 1e-3
    normal_crop: tuple[int, int] = (64, 112)
    normal_variants: list[str] = field(default_factory=lambda: list(NORMAL_VARIANTS))

    @classmethod
    def quick(cls) -> Settings:
        return cls(
            prior_shots=2, train_shots=1, eval_shots=1, frames=6, samples=2, prior_steps=20, steps=3,
            clip_frames=4, seeds=[0, 1], ablation_seeds=[0], curve_points=2, workers=0, normal_prior_steps=10,
            normal_crop=(32, 56), normal_variants=[name for name in NORMAL_VARIANTS if name not in FIXED_LENGTH],
        )  # fmt: skip


# --- corpus ----------------------------------------------------------------------------------------
def render_corpus(corpus: Path, s: Settings, log) -> dict[str, list[Path]]:
    """Render (or reuse) every shot; returns the shot folders per role."""
    roles = {
        "prior": [PRIOR_SEED0 + i for i in range(s.prior_shots)],
        "train": [TRAIN_SEED0 + i for i in range(s.train_shots)],
        "eval": [EVAL_SEED0 + i for i in range(s.eval_shots)],
    }
    out: dict[str, list[Path]] = {}
    for role, seeds in roles.items():
        out[role] = []
        for seed in seeds:
            folder, seconds = render_shot(corpus, seed=seed, frames=s.frames, width=s.width, height=s.height, samples=s.samples)
            if seconds is not None:
                log(f"  rendered {role} scene seed {seed} ({seconds:.0f} s)")
            out[role].append(folder)
    return out


def render_shot(cache: Path, *, seed: int, frames: int, width: int, height: int, samples: int) -> tuple[Path, float | None]:
    """The shot of `seed` rendered by scripts/blender/render_synthetic_shot.py into a folder of `cache`
    named by its settings, or the one already there; returns the folder and the seconds spent rendering
    (None when reused). Also used by bench_stabilize."""
    folder = cache / f"seed{seed:04d}_{width}x{height}_f{frames}_s{samples}"
    if (folder / "cameras.json").is_file():
        return folder, None
    if not BLENDER_PYTHON.is_file():
        raise SystemExit(f"{BLENDER_PYTHON} is missing: the shots are rendered with bpy")
    t0 = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    command = [
        str(BLENDER_PYTHON), str(RENDER_SCRIPT), "--out", str(folder), "--seed", str(seed),
        "--frames", str(frames), "--width", str(width), "--height", str(height),
        "--samples", str(samples), "--threads", "2",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"rendering seed {seed} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    return folder, time.perf_counter() - t0


def load_shot(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Model-ready sRGB frames (T, 3, H, W) float32 and metric Z-depth (T, H, W)."""
    from bufferany_core.evaluation.ground_truth_shot import load_synthetic_shot
    from bufferany_core.frames import FrameSequence, read_frames

    shot = load_synthetic_shot(folder)
    sequence = FrameSequence.from_input(shot.plate_pattern)
    frames = np.stack([f.rgb for f in read_frames(sequence, shot.frames)]).transpose(0, 3, 1, 2)
    return np.ascontiguousarray(frames, dtype=np.float32), shot.depth.astype(np.float64)


# --- the image prior -------------------------------------------------------------------------------
def cached_prior(corpus: Path, folders: list[Path], s: Settings, log) -> tuple[Path, list[float], float | None]:
    """The prior trained on the PRIOR scenes, stored in the corpus folder under a name made of every
    setting it depends on and reused by later runs (it costs minutes on shared CPUs); returns the
    weights, the training losses and the seconds spent training (None when reused)."""
    name = (
        f"prior_tiny_{s.prior_shots}shots_{s.width}x{s.height}_f{s.frames}_s{s.samples}"
        f"_steps{s.prior_steps}_lr{s.prior_lr:g}_crop{s.crop[0]}x{s.crop[1]}"
    )
    path, losses_path = corpus / f"{name}.safetensors", corpus / f"{name}.losses.json"
    if path.is_file() and losses_path.is_file():
        log(f"Prior: reusing {path.name}")
        return path, json.loads(losses_path.read_text()), None
    t0 = time.perf_counter()
    losses = train_prior([load_shot(f) for f in folders], s, path)
    losses_path.write_text(json.dumps(losses))
    return path, losses, time.perf_counter() - t0


def random_crop(rng: random.Random, pair: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A random crop of 60-100% of the height of (C, H, W) `pair` (image and target stacked), as wide
    as `size`'s aspect allows, resized to `size` (the priors' supervised training)."""
    h, w = pair.shape[-2:]
    scale = rng.uniform(0.6, 1.0)
    ch, cw = round(h * scale), round(min(w, h * scale * size[1] / size[0]))
    top, left = rng.randrange(h - ch + 1), rng.randrange(w - cw + 1)
    return F.interpolate(pair[None, :, top : top + ch, left : left + cw], size=size, mode="bilinear")[0]


def train_prior(shots: list[tuple[np.ndarray, np.ndarray]], s: Settings, path: Path) -> list[float]:
    """Supervised per-frame training of a tiny Depth Anything V2 (random init) on (frames, depth)
    pairs: random crops of the training aspect, flips, affine-invariant L2 on inverse depth. Writes
    the weights to `path`; returns the losses."""
    from safetensors.torch import save_file

    from bufferany_core.losses import depth_regularization_loss
    from bufferany_core.models.depth import DepthAnythingV2
    from bufferany_core.models.weights import deterministic_state_dict

    torch.manual_seed(0)
    rng = random.Random(0)
    model = DepthAnythingV2.from_size("tiny")
    model.load_state_dict(deterministic_state_dict(model, seed=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.prior_lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, s.prior_steps))
    pool = [(frames[k], 1.0 / depth[k]) for frames, depth in shots for k in range(len(frames))]
    losses = []
    model.train()
    for _ in range(s.prior_steps):
        images, targets = [], []
        for frame, inverse in rng.sample(pool, min(4, len(pool))):
            pair = torch.cat([torch.from_numpy(frame), torch.from_numpy(inverse).float()[None]])
            crop = random_crop(rng, pair, s.crop)
            if rng.random() < 0.5:
                crop = crop.flip(-1)
            images.append(crop[:3])
            targets.append(crop[3])
        prediction = model(model.normalize(torch.stack(images)))  # (B, h, w) inverse depth
        loss = depth_regularization_loss(prediction[:, None, None], torch.stack(targets)[:, None, None])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
        losses.append(float(loss.detach()))
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return losses


# --- evaluation ------------------------------------------------------------------------------------
def backward_flows(frames: np.ndarray) -> np.ndarray:
    """(T-1, H, W, 2): flow from frame t to frame t-1, as OPW takes it."""
    from bufferany_core.flow import DISFlow, adjacent_flows

    _, bw = adjacent_flows(torch.from_numpy(frames), DISFlow())
    return bw.permute(0, 2, 3, 1).numpy()


def shot_metrics(prediction: np.ndarray, frames: np.ndarray, depth: np.ndarray, flows: np.ndarray) -> dict[str, float]:
    from bufferany_core.evaluation.metrics import (
        align_depth,
        depth_accuracy,
        depth_opw,
        temporal_gradient_error,
    )

    accuracy = depth_accuracy(prediction, depth)
    aligned, _, _ = align_depth(prediction, depth)
    return {
        "abs_rel": accuracy["abs_rel"],
        "delta1": accuracy["delta1"],
        "te": temporal_gradient_error(aligned, depth),
        "opw": depth_opw(prediction, frames.transpose(0, 2, 3, 1), flows),
    }


def evaluate(predict, eval_set, metrics=None) -> dict[str, float]:
    """`metrics` (default: depth's `shot_metrics`) averaged over the held-out shots (each shot aligned
    on its own); eval_set: (frames, truth, flows) per shot."""
    metrics = metrics or shot_metrics
    per_shot = [metrics(predict(frames), frames, truth, flows) for frames, truth, flows in eval_set]
    return {key: float(np.mean([m[key] for m in per_shot])) for key in per_shot[0]}


def predictor_fn(predictor):
    return lambda frames: predictor.predict(torch.from_numpy(frames))[:, 0].numpy()


def stabilised_fn(prior_predict):
    """The prior followed by the render's training-free stabiliser (`--stabilize on`)."""
    from bench_stabilize import shot_stabilise

    from bufferany_core.flow import DISFlow

    def run(frames: np.ndarray) -> np.ndarray:
        depth, _, _ = shot_stabilise(frames, prior_predict(frames)[:, None], None, DISFlow(), torch.device("cpu"))
        return depth[:, 0].astype(np.float32)

    return run


# --- fine-tuning -----------------------------------------------------------------------------------
def fine_tune(config_file: str, model: dict, data: Path, out: Path, cache: Path, s: Settings, *, seed: int,
              overrides: dict, curve: bool) -> tuple[Path, TrainConfig]:
    """One label-free fine-tuning run of the shipped `config_file` at miniature sizes (`model`: the
    model and crop keys of the task); returns its final temporal weights and the config it trained with."""
    from bufferany_training.config import load_config
    from bufferany_training.trainer import train

    every = max(1, s.steps // s.curve_points) if curve else s.steps
    config = load_config(
        Path(config_file),
        [],
        {
            "seed": seed,
            **model,
            "data.frames": s.clip_frames,
            "data.scale": [0.7, 1.0],
            "data.workers": s.workers,
            "data.cache": str(cache),
            **({} if s.lr is None else {"optim.lr": s.lr}),
            "optim.iterations": s.steps,
            "run.checkpoint_every": every,
            "run.keep_checkpoints": s.curve_points + 2,
            "run.log_every": max(1, s.steps // 30),
            "run.gradient_checkpointing": False,
            "run.progress": False,
            "run.device": "cpu",
            **s.extra,
            **overrides,
        },
    )
    return train(config, data=data, out=out, say=lambda _: None), config


def training_curve(out: Path) -> dict[str, list[tuple[int, float]]]:
    """The logged losses, mask coverage and warp errors of the run in `out`."""
    scalars = read_scalars(out / "logs")
    keys = ("loss/total", "loss/reg", "loss/stable", "masks/coverage", "temporal/warp_error_video",
            "temporal/warp_error_prior")  # fmt: skip
    return {k: scalars.get(k, []) for k in keys}


def heldout_curve(out: Path, prior: dict[str, float], video_predict, eval_set, metrics=None,
                  keys: tuple[str, ...] = ("te",)) -> dict[str, list[tuple[int, float]]]:
    """`heldout_<key>` over the steps: the held-out figures of the checkpoints the run in `out` kept,
    after the prior's at step 0 (the blocks start as the identity)."""
    points = {key: [(0, prior[key])] for key in keys}
    for folder in sorted((out / "checkpoints").glob("step_*")):
        step = int(folder.name.split("_")[1])
        figures = evaluate(video_predict(folder / "temporal.safetensors"), eval_set, metrics)
        for key in keys:
            points[key].append((step, figures[key]))
    return {f"heldout_{key}": values for key, values in points.items()}


def read_scalars(logs: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(logs))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def summary(values: list[float]) -> dict:
    return {
        "mean": float(np.mean(values)),
        "std": float(statistics.stdev(values)) if len(values) > 1 else 0.0,
        "seeds": [float(v) for v in values],
    }


def run_record(host: str, load, s: Settings, args, timings: dict, prior_seconds: float | None) -> dict:
    """What a run's figures are recorded with: machine, load, settings, timings, whether the prior was reused."""
    return {
        "machine": host,
        "load_average_start": list(load),
        "load_average_end": list(os.getloadavg()),
        "settings": {**asdict(s), "quick": args.quick},
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "prior_reused": prior_seconds is None,
    }


def stabiliser_fields(main_runs: dict, base: dict, stab: dict, ratio_metrics, vs_metrics) -> dict:
    """The stabiliser baseline against the prior (`stabiliser_ratio`) and the shipped config's runs
    (seed -> metrics) against the stabiliser (`vs_stabiliser`, mean and spread over seeds)."""
    return {
        "stabiliser_ratio": {f"{m}_ratio": stab[m] / base[m] for m in ratio_metrics},
        "vs_stabiliser": {
            f"{m}_ratio": summary([main_runs[seed][m] / stab[m] for seed in sorted(main_runs)]) for m in vs_metrics
        },
    }


def refresh_stabiliser(args, log) -> None:
    """--refresh-stabiliser: re-measure the prior and the prior + stabiliser rows of the committed run
    (the stabiliser changed; the fine-tuned runs did not), with the settings that run recorded."""
    from bufferany_core.models.depth import load_depth_predictor
    from bufferany_core.models.normal import load_normal_predictor
    from bufferany_core.pipeline.stabilizing import stabilizer_settings

    result = read_results(args.out)
    stabiliser = "prior + training-free stabiliser"
    measured = {"stabilizer": stabilizer_settings(), "machine": machine("cpu"), "load_average": list(os.getloadavg())}

    def settings(recorded: dict) -> Settings:
        s = Settings(**{k: v for k, v in recorded.items() if k != "quick"})
        s.crop, s.normal_crop = tuple(s.crop), tuple(s.normal_crop)
        torch.set_num_threads(1 if s.workers else 2)  # as the run had them
        return s

    if "te_ratio" in result:
        s = settings(result["settings"])
        shots = render_corpus(args.corpus, s, log)
        eval_set = [(frames, depth, backward_flows(frames)) for frames, depth in map(load_shot, shots["eval"])]
        prior, _, _ = cached_prior(args.corpus, shots["prior"], s, log)
        prior_predict = predictor_fn(load_depth_predictor("depth-anything-v2-tiny", weights=prior, processing_size=s.processing))
        base, stab = evaluate(prior_predict, eval_set), evaluate(stabilised_fn(prior_predict), eval_set)
        log(f"  depth prior {base} (committed run: {result['baselines']['image prior (per frame)']}); stabiliser {stab}")
        result["baselines"][stabiliser] = stab
        result.update(stabiliser_fields(result["runs"][MAIN], base, stab, ("te", "opw", "abs_rel", "delta1"), ("te", "opw", "abs_rel")))
        result["stabiliser_measured"] = measured
    if "normals" in result:
        n = result["normals"]
        s = settings(n["settings"])
        shots = render_corpus(args.corpus, s, log)
        eval_set = [(f, normals, backward_flows(f)) for f, normals in map(load_shot_normals, shots["eval"])]
        prior, _, _ = cached_normal_prior(args.corpus, shots["prior"], s, log)
        size = max(s.width, s.height)
        prior_predict = normal_predictor_fn(load_normal_predictor("marigold-e2e-ft-normals", weights=prior, processing_size=size))
        base = evaluate(prior_predict, eval_set, normal_shot_metrics)
        stab = evaluate(stabilised_normals_fn(prior_predict), eval_set, normal_shot_metrics)
        log(f"  normal prior {base} (committed run: {n['baselines'][NORMAL_PRIOR]}); stabiliser {stab}")
        n["baselines"][stabiliser] = stab
        metrics = ("te", "opw", "mean_angle")
        n.update(stabiliser_fields(n["runs"][NORMAL_MAIN], base, stab, metrics, metrics))
        n["stabiliser_measured"] = measured
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    log(write_report(result, args.out))


# --- normals (--normals) ---------------------------------------------------------------------------
def load_shot_normals(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """Model-ready sRGB frames (T, 3, H, W) float32 and the rendered camera-space unit normals
    (T, H, W, 3) in conventions.NORMAL_AXES."""
    from bufferany_core.evaluation.ground_truth_shot import load_synthetic_shot

    frames, _ = load_shot(folder)
    return frames, load_synthetic_shot(folder).normals.astype(np.float64)


def cached_normal_prior(corpus: Path, folders: list[Path], s: Settings, log) -> tuple[Path, list[float], float | None]:
    """The normal prior trained on the PRIOR scenes: a diffusers folder in the corpus folder named by
    every setting it depends on, reused by later runs; returns it, its losses and the seconds spent
    training (None when reused)."""
    name = (
        f"normal_prior_tiny_{s.prior_shots}shots_{s.width}x{s.height}_f{s.frames}_s{s.samples}"
        f"_steps{s.normal_prior_steps}_lr{s.normal_prior_lr:g}_crop{s.normal_crop[0]}x{s.normal_crop[1]}"
    )
    folder, losses_path = corpus / name, corpus / f"{name}.losses.json"
    if (folder / "vae").is_dir() and losses_path.is_file():
        log(f"Normal prior: reusing {folder.name}")
        return folder, json.loads(losses_path.read_text()), None
    t0 = time.perf_counter()
    shutil.rmtree(folder, ignore_errors=True)
    losses = train_normal_prior([load_shot_normals(f) for f in folders], s, folder)
    losses_path.write_text(json.dumps(losses))
    return folder, losses, time.perf_counter() - t0


def train_normal_prior(shots: list[tuple[np.ndarray, np.ndarray]], s: Settings, folder: Path) -> list[float]:
    """Supervised per-frame training of the "tiny" Marigold-E2E-FT tables (UNet and VAE from their
    default initialisation, one step from a zero noisy latent, as E2E-FT predicts) on (frames, normals)
    pairs: random crops of the training aspect, angular loss (1 - cosine) on the decoded normals. The
    whole network learns: a random tiny VAE has no latent space worth freezing. Writes a diffusers
    folder (unet/, vae/, scheduler/, the empty-prompt embedding) that load_normal_predictor reads."""
    from diffusers import DDPMScheduler
    from safetensors.torch import save_file

    from bufferany_core.conventions import NORMAL_AXES
    from bufferany_core.models.normal import MODEL_AXES, build_normal_model
    from bufferany_core.models.normal.configs import DEFAULT_SCHEDULER
    from bufferany_core.models.normal.text_embedding import CACHE_NAME
    from bufferany_core.normal_space import convert_axes

    torch.manual_seed(0)
    rng = random.Random(0)
    model = build_normal_model("marigold-e2e-ft-normals-tiny")
    optimizer = torch.optim.AdamW(model.parameters(), lr=s.normal_prior_lr, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, s.normal_prior_steps))
    pool = [
        (frames[k], convert_axes(torch.from_numpy(normals[k]).permute(2, 0, 1).float(), NORMAL_AXES, MODEL_AXES, axis=0))
        for frames, normals in shots
        for k in range(len(frames))
    ]  # fmt: skip
    losses = []
    model.train()
    for _ in range(s.normal_prior_steps):
        images, targets = [], []
        for frame, normals in rng.sample(pool, min(4, len(pool))):
            crop = random_crop(rng, torch.cat([torch.from_numpy(frame), normals]), s.normal_crop)
            images.append(crop[:3])
            targets.append(F.normalize(crop[3:], dim=0))
        prediction = model(model.normalize(torch.stack(images)))  # (B, 3, h, w) unit normals
        loss = (1.0 - (prediction * torch.stack(targets)).sum(1)).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        schedule.step()
        losses.append(float(loss.detach()))
    model.unet.save_pretrained(folder / "unet")
    model.vae.save_pretrained(folder / "vae")
    DDPMScheduler(**DEFAULT_SCHEDULER).save_pretrained(folder / "scheduler")
    save_file({"embedding": model.text_embedding.contiguous()}, str(folder / CACHE_NAME))
    return losses


def normal_te(prediction: np.ndarray, normals: np.ndarray) -> float:
    """TE for normals: mean over consecutive frames and pixels of |(n_{t+1} - n_t) - (g_{t+1} - g_t)|
    (Euclidean, unit vectors): how far the frame-to-frame change departs from the true change, as the
    depth TE (metrics.temporal_gradient_error) measures it for depth."""
    return float(np.linalg.norm(np.diff(prediction, axis=0) - np.diff(normals, axis=0), axis=-1).mean())


def normal_shot_metrics(prediction: np.ndarray, frames: np.ndarray, normals: np.ndarray, flows: np.ndarray) -> dict:
    """prediction and normals (T, H, W, 3) in the same axes."""
    from bufferany_core.evaluation.metrics import normal_accuracy, normal_opw

    return {
        "mean_angle": normal_accuracy(prediction, normals)["mean_angle"],
        "te": normal_te(prediction, normals),
        "opw": normal_opw(prediction, frames.transpose(0, 2, 3, 1), flows),
    }


def normal_predictor_fn(predictor):
    """(T, 3, H, W) frames -> (T, H, W, 3) normals in conventions.NORMAL_AXES, the ground truth's axes."""
    return lambda frames: predictor.predict(torch.from_numpy(frames)).permute(0, 2, 3, 1).double().numpy()


def stabilised_normals_fn(prior_predict):
    """The normal prior followed by the render's training-free stabiliser (normals only: no depth edges)."""
    from bench_stabilize import shot_stabilise

    from bufferany_core.flow import DISFlow

    def run(frames: np.ndarray) -> np.ndarray:
        normals = prior_predict(frames).transpose(0, 3, 1, 2)  # (T, 3, H, W)
        _, stable, _ = shot_stabilise(frames, None, normals, DISFlow(), torch.device("cpu"))
        return stable.transpose(0, 2, 3, 1)

    return run


def run_normals(args, s: Settings, shots: dict[str, list[Path]], log, *, host: str, load, timings: dict,
                started: float) -> None:
    """The normal miniature; merges its figures under `normals` into args.out and rewrites the report."""
    from diffusers.utils import logging as diffusers_logging

    from bufferany_core.models.normal import load_normal_predictor

    diffusers_logging.set_verbosity_error()  # every folder load would advise installing accelerate
    eval_set = [(f, n, backward_flows(f)) for f, n in map(load_shot_normals, shots["eval"])]
    # The "tiny" catalogue entries take random weights only; the full entries load any diffusers
    # folder, and build the image and video models from the folder's own (tiny) UNet and VAE configs.
    size = max(s.width, s.height)
    prior, prior_losses, prior_seconds = cached_normal_prior(args.corpus, shots["prior"], s, log)
    timings["normal_prior"] = prior_seconds or 0.0
    spent = "reused" if prior_seconds is None else f"{prior_seconds:.0f} s"
    log(f"Normal prior: tiny Marigold-E2E-FT tables, {s.normal_prior_steps} supervised steps ({spent}; "
        f"loss {np.mean(prior_losses[:10]):.3f} -> {np.mean(prior_losses[-10:]):.3f})")
    prior_predict = normal_predictor_fn(load_normal_predictor("marigold-e2e-ft-normals", weights=prior, processing_size=size))
    t0 = time.perf_counter()
    figures = {NORMAL_PRIOR: evaluate(prior_predict, eval_set, normal_shot_metrics)}
    committed = committed_normals(args, s, figures[NORMAL_PRIOR]) if args.add_normal_variants else None
    if committed is None:
        figures["prior + training-free stabiliser"] = evaluate(stabilised_normals_fn(prior_predict), eval_set, normal_shot_metrics)
    timings["normal_baselines"] = time.perf_counter() - t0
    log("  " + "; ".join(f"{k}: " + ", ".join(f"{m} {v:.4f}" for m, v in f.items()) for k, f in figures.items()))

    def video_predict(weights: Path):
        return normal_predictor_fn(load_normal_predictor(
            "buffer-anytime-normal", weights=prior, temporal_weights=weights, processing_size=size
        ))  # fmt: skip

    runs: dict[str, dict[int, dict[str, float]]] = {}
    curves: dict[str, dict] = {}
    recipe: dict = {}
    model = {"model.name": "buffer-anytime-normal", "model.weights": str(prior), "data.size": list(s.normal_crop)}
    variants = [(name, NORMAL_VARIANTS[name], s.ablation_seeds) for name in s.normal_variants]
    if committed is None:
        variants.insert(0, (NORMAL_MAIN, {}, s.seeds))
    t_train = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-train-normals-") as tmp:
        tmp = Path(tmp)
        data = link_plates(shots["train"], tmp / "clips")
        for label, overrides, seeds in variants:
            runs[label] = {}
            for seed in seeds:
                t0 = time.perf_counter()
                out = tmp / f"{len(curves)}-{seed}"
                weights, config = fine_tune("normal.toml", model, data, out, tmp / "flow-cache", s, seed=seed,
                                            overrides=overrides, curve=label == NORMAL_MAIN)
                runs[label][seed] = evaluate(video_predict(weights), eval_set, normal_shot_metrics)
                curve = training_curve(out)
                if label == NORMAL_MAIN:
                    curve.update(heldout_curve(out, figures[NORMAL_PRIOR], video_predict, eval_set,
                                               normal_shot_metrics, keys=("te", "mean_angle")))
                curves[f"{label} / seed {seed}"] = curve
                if label == NORMAL_MAIN:
                    recipe = {**asdict(config.loss), **asdict(config.optim), "decode_chunk": config.run.decode_chunk}
                log(f"  {label}, seed {seed}: " + ", ".join(f"{m} {v:.4f}" for m, v in runs[label][seed].items())
                    + f" ({time.perf_counter() - t0:.0f} s)")
    timings["normal_fine_tuning"] = time.perf_counter() - t_train
    timings["total"] = time.perf_counter() - started

    metrics = ("te", "opw", "mean_angle")

    def ratios(per_seed: dict[int, dict[str, float]], reference: dict[str, float]) -> dict[str, dict]:
        return {f"{m}_ratio": summary([per_seed[k][m] / reference[m] for k in sorted(per_seed)]) for m in metrics}

    if committed is not None:
        normals = merge_variants(committed, {label: ratios(runs[label], figures[NORMAL_PRIOR]) for label in runs},
                                 runs, curves, run_record(host, load, s, args, timings, prior_seconds))
        finish_normals(args, normals, log, timings)
        return
    base, stab = figures[NORMAL_PRIOR], figures["prior + training-free stabiliser"]
    normals = {
        **run_record(host, load, s, args, timings, prior_seconds),
        "recipe": recipe,
        "metrics": {
            "mean_angle": "mean angle error (degrees) to the rendered normals, metrics.normal_accuracy",
            "opw": "metrics.normal_opw: flow-warped |n_t - n_{t-1}|, Euclidean between unit vectors (0-2)",
            "te": "mean |(n_{t+1} - n_t) - (g_{t+1} - g_t)|, Euclidean, against the rendered normals",
        },
        **ratios(runs[NORMAL_MAIN], base),
        "variants": {label: ratios(runs[label], base) for label, _, _ in variants[1:]},
        **stabiliser_fields(runs[NORMAL_MAIN], base, stab, metrics, metrics),
        "baselines": figures,
        "runs": {label: {str(seed): m for seed, m in per_seed.items()} for label, per_seed in runs.items()},
        "prior_loss": prior_losses[:: max(1, len(prior_losses) // 100)],
        "curves": curves,
    }
    finish_normals(args, normals, log, timings)


def committed_normals(args, s: Settings, prior: dict[str, float]) -> dict:
    """--add-normal-variants: the committed normal record in --out that this run's variants join; its
    settings (but the variant list) and its prior's held-out figures must be this run's."""
    committed = read_results(args.out).get("normals")
    if committed is None:
        raise SystemExit(f"--add-normal-variants: {args.out} has no normal run to add to")
    mine = {**asdict(s), "quick": args.quick}
    differ = [k for k in mine if k != "normal_variants" and json.loads(json.dumps(mine[k])) != committed["settings"].get(k)]
    if differ:
        raise SystemExit(f"--add-normal-variants: settings {differ} differ from the committed run's in {args.out}")
    theirs = committed["baselines"][NORMAL_PRIOR]
    if any(not np.isclose(prior[m], theirs[m], rtol=1e-6) for m in prior):
        raise SystemExit(f"--add-normal-variants: the prior scores {prior} here, {theirs} in the committed run")
    return committed


def merge_variants(committed: dict, ratios: dict, runs: dict, curves: dict, record: dict) -> dict:
    """The committed normal record with this run's variants added (or replacing those of the same
    name), and what they were measured with under `added_runs`."""
    merged = dict(committed)
    merged["variants"] = {**committed["variants"], **ratios}
    merged["runs"] = {**committed["runs"], **{label: {str(k): m for k, m in v.items()} for label, v in runs.items()}}
    merged["curves"] = {**committed["curves"], **curves}
    merged["settings"] = {**committed["settings"], "normal_variants": list(merged["variants"])}
    merged["added_runs"] = committed.get("added_runs", []) + [{"variants": list(runs), **record}]
    return merged


def finish_normals(args, normals: dict, log, timings: dict) -> None:
    """Writes the normal record under `normals` into --out (the depth figures kept), the report and --json."""
    result = {**read_results(args.out), "normals": normals}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    report = write_report(result, args.out)
    s, metrics = normals["settings"], ("te", "opw", "mean_angle")
    rows = dict(normals["baselines"])
    for label, per_seed in normals["runs"].items():
        rows[label] = {m: float(np.mean([v[m] for v in per_seed.values()])) for m in metrics}
    write_json(
        args.json,
        machine=normals["machine"],
        tables=[
            table(
                title="Training miniature, normals: held-out rendered scenes",
                setup=f"{s['train_shots']} unlabeled training scenes, {s['eval_shots']} held-out; normal prior "
                f"{s['normal_prior_steps']} supervised steps; {s['steps']} fine-tuning steps; means over seeds {s['seeds']} "
                f"(variants {s['ablation_seeds']})",
                baseline=NORMAL_PRIOR,
                metrics={"mean_angle": "mean angle", "te": "TE", "opw": "OPW"},
                rows=rows,
                headline="te",
            )
        ],
    )
    log(report)
    log(f"Wrote {args.out}, {args.out.with_suffix('.md')}, total {timings['total']:.0f} s")


def normal_report(n: dict) -> list[str]:
    s, r, base = n["settings"], n["recipe"], n["baselines"][NORMAL_PRIOR]
    st = n["stabiliser_ratio"]
    lines = [
        "## Normals",
        "",
        f"Machine: {n['machine']}; load average {n['load_average_start'][0]:.1f} at start, "
        f"{n['load_average_end'][0]:.1f} at the end; total {n['timings_s']['total']:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in n['timings_s'].items() if k != 'total')}).",
        "",
        f"Same corpus. Prior: the tiny Marigold-E2E-FT tables trained end to end with the rendered normals of "
        f"the prior scenes, {s['normal_prior_steps']} steps"
        f"{' (reused from the corpus folder)' if n['prior_reused'] else ''}. Fine-tuning: {s['steps']} steps of "
        f"normal.toml's recipe (w_reg {r['w_reg']}, lr {r['lr']:g} {r['schedule']}, gradient clip {r['grad_clip']}; "
        f"latent L_reg, L_stable on normals decoded {r['decode_chunk']} frames at a time with deferred "
        f"back-propagation, cycle mask), {s['clip_frames']}-frame clips at {s['normal_crop'][0]}x{s['normal_crop'][1]}; "
        f"seeds {s['seeds']} (variants {s['ablation_seeds']}){'; QUICK smoke run' if s['quick'] else ''}.",
        "",
        f"Per-frame prior on held-out scenes: mean angle {base['mean_angle']:.2f} deg, TE {base['te']:.4f}, "
        f"OPW {base['opw']:.4f}. OPW on normals: flow-warped Euclidean distance between unit normals "
        "(metrics.normal_opw); TE: Euclidean |change - true change| per pixel and frame pair.",
        "",
        "| variant (ratio to the prior; mean ± std over seeds) | TE | OPW | mean angle | seeds |",
        "|---|---|---|---|---|",
        f"| prior + {stabiliser_label(n)} | {st['te_ratio']:.2f}x | {st['opw_ratio']:.2f}x | "
        f"{st['mean_angle_ratio']:.2f}x | - |",
    ]
    for label, v in [(NORMAL_MAIN, n)] + list(n["variants"].items()):
        lines.append(f"| {label} | {cell(v['te_ratio'])} | {cell(v['opw_ratio'])} | {cell(v['mean_angle_ratio'])} "
                     f"| {len(v['te_ratio']['seeds'])} |")
    main = [c for name, c in n["curves"].items() if name.startswith(NORMAL_MAIN) and c.get("heldout_te")]
    if main:  # ratios to the prior at each evaluated step, mean over the seeds
        points = [
            f"step {step}: TE {np.mean([c['heldout_te'][i][1] for c in main]) / base['te']:.2f}x, mean angle "
            f"{np.mean([c['heldout_mean_angle'][i][1] for c in main]) / base['mean_angle']:.2f}x"
            for i, (step, _) in enumerate(main[0]["heldout_te"])
            if i
        ]
        lines += ["", f"{NORMAL_MAIN} on the held-out scenes over the steps (mean over seeds): {'; '.join(points)}."]
    for added in n.get("added_runs", []):
        lines += ["", f"Added later with --add-normal-variants (same settings and prior; the rows above kept): "
                  f"{', '.join(added['variants'])}; load average {added['load_average_start'][0]:.1f} at start, "
                  f"{added['load_average_end'][0]:.1f} at the end; {added['timings_s']['total']:.0f} s."]
    return lines


# --- main ------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a few-minute smoke run (tiny corpus, few steps)")
    parser.add_argument("--normals", action="store_true",
                        help="the normal miniature (tiny Marigold-style prior, normal.toml); figures under `normals`")
    parser.add_argument("--corpus", type=Path, default=REPO / "benchmarks" / "results" / "training_miniature_corpus")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "training_miniature.json")
    parser.add_argument("--set", dest="settings", action="append", default=[], metavar="NAME=JSON",
                        help="override a Settings field, e.g. --set steps=300 --set seeds=[0,1]")
    parser.add_argument("--config-set", dest="extra", action="append", default=[], metavar="KEY=JSON",
                        help="extra bufferany-train config override for every run, e.g. model.train_head=false")
    parser.add_argument("--prior-steps", type=int, default=None, help="same as --set prior_steps=N")
    parser.add_argument("--steps", type=int, default=None, help="same as --set steps=N")
    parser.add_argument("--refresh-stabiliser", action="store_true",
                        help="re-measure only the prior + stabiliser rows of the committed run in --out (after a "
                        "stabiliser change), with that run's settings; seconds, no training")
    parser.add_argument("--add-normal-variants", action="store_true",
                        help="with --normals: train only the variants in normal_variants and add them to the committed "
                        "normal run in --out (same settings and prior required); its other rows are kept, not re-run")
    add_json_option(parser)  # benchmarks/report.py's tables (the figures above, means over seeds)
    args = parser.parse_args()
    if args.add_normal_variants and not args.normals:
        parser.error("--add-normal-variants adds to a normal run: use it with --normals")
    s = Settings.quick() if args.quick else Settings()
    if args.prior_steps is not None:
        s.prior_steps = args.prior_steps
    if args.steps is not None:
        s.steps = args.steps
    for text in args.settings:
        name, _, value = text.partition("=")
        if not hasattr(s, name):
            parser.error(f"--set {name}: no such setting ({', '.join(asdict(s))})")
        setattr(s, name, json.loads(value))
    s.crop, s.normal_crop = tuple(s.crop), tuple(s.normal_crop)
    for text in args.extra:
        key, _, value = text.partition("=")
        s.extra[key] = json.loads(value)
    torch.set_num_threads(1 if s.workers else 2)
    log = lambda text: print(text, flush=True)  # noqa: E731
    if args.refresh_stabiliser:
        refresh_stabiliser(args, log)
        return
    host = machine("cpu")
    load = os.getloadavg()
    log(f"Machine: {host}; load average at start {load[0]:.1f}")
    timings: dict[str, float] = {}
    started = time.perf_counter()

    t0 = time.perf_counter()
    shots = render_corpus(args.corpus, s, log)
    timings["corpus"] = time.perf_counter() - t0
    if args.normals:
        run_normals(args, s, shots, log, host=host, load=load, timings=timings, started=started)
        return
    eval_set = [(frames, depth, backward_flows(frames)) for frames, depth in map(load_shot, shots["eval"])]

    from bufferany_core.models.depth import load_depth_predictor

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        prior, prior_losses, prior_seconds = cached_prior(args.corpus, shots["prior"], s, log)
        timings["prior"] = prior_seconds or 0.0
        spent = "reused" if prior_seconds is None else f"{prior_seconds:.0f} s"
        log(f"Prior: tiny Depth Anything V2, {s.prior_steps} supervised steps on {len(shots['prior'])} scenes "
            f"({spent}; loss {np.mean(prior_losses[:10]):.3f} -> {np.mean(prior_losses[-10:]):.3f})")
        data = link_plates(shots["train"], tmp / "clips")
        cache = tmp / "flow-cache"

        prior_predict = predictor_fn(load_depth_predictor("depth-anything-v2-tiny", weights=prior, processing_size=s.processing))
        t0 = time.perf_counter()
        figures: dict[str, dict[str, float]] = {"image prior (per frame)": evaluate(prior_predict, eval_set)}
        try:
            figures["prior + training-free stabiliser"] = evaluate(stabilised_fn(prior_predict), eval_set)
        except Exception as exc:  # the stabiliser is another team's moving code: report, do not stop
            log(f"  stabiliser baseline failed: {type(exc).__name__}: {exc}")
        timings["baselines"] = time.perf_counter() - t0
        log("  " + "; ".join(f"{k}: " + ", ".join(f"{m} {v:.4f}" for m, v in f.items()) for k, f in figures.items()))

        def video_predict(weights: Path):
            return predictor_fn(load_depth_predictor(
                "buffer-anytime-depth-tiny", weights=prior, temporal_weights=weights, processing_size=s.processing
            ))  # fmt: skip

        runs: dict[str, dict[int, dict[str, float]]] = {}
        curves: dict[str, dict] = {}
        recipe: dict = {}
        variants = [(MAIN, {}, s.seeds)] + [(name, ABLATIONS[name], s.ablation_seeds) for name in s.ablations]
        t_train = time.perf_counter()
        for label, overrides, seeds in variants:
            runs[label] = {}
            for seed in seeds:
                t0 = time.perf_counter()
                out = tmp / f"{len(curves)}-{label.split()[0]}-{seed}"
                weights, config = fine_tune(
                    "depth.toml",
                    {"model.name": "buffer-anytime-depth-tiny", "model.weights": str(prior), "data.size": list(s.crop)},
                    data, out, cache, s, seed=seed, overrides=overrides, curve=label == MAIN,
                )  # fmt: skip
                runs[label][seed] = evaluate(video_predict(weights), eval_set)
                curve = training_curve(out)
                if label == MAIN:
                    curve.update(heldout_curve(out, figures["image prior (per frame)"], video_predict, eval_set))
                curves[f"{label} / seed {seed}"] = curve
                if label == MAIN:  # what the shipped config trained with
                    recipe = {**asdict(config.loss), **asdict(config.optim), "train_head": config.model.train_head}
                log(f"  {label}, seed {seed}: " + ", ".join(f"{m} {v:.4f}" for m, v in runs[label][seed].items())
                    + f" ({time.perf_counter() - t0:.0f} s)")
        timings["fine_tuning"] = time.perf_counter() - t_train
    timings["total"] = time.perf_counter() - started

    base = figures["image prior (per frame)"]

    def ratios(per_seed: dict[int, dict[str, float]], reference: dict[str, float]) -> dict[str, dict]:
        return {
            f"{m}_ratio": summary([per_seed[seed][m] / reference[m] for seed in sorted(per_seed)])
            for m in ("te", "opw", "abs_rel", "delta1")
        }

    main_ratios = ratios(runs[MAIN], base)
    result = {
        **run_record(host, load, s, args, timings, prior_seconds),  # prior_reused: trained by an earlier run with the same settings
        "recipe": recipe,
        "te_ratio": main_ratios["te_ratio"],
        "opw_ratio": main_ratios["opw_ratio"],
        "absrel_ratio": main_ratios["abs_rel_ratio"],
        "delta1_ratio": main_ratios["delta1_ratio"],
        "goal": {"te_ratio_max": 0.6, "opw_ratio_max": 0.6, "absrel_ratio_max": 1.0},
        "ablations": {label: ratios(runs[label], base) for label, _, _ in variants[1:]},
        "baselines": figures,
        "runs": {label: {str(seed): m for seed, m in per_seed.items()} for label, per_seed in runs.items()},
        "prior_loss": prior_losses[:: max(1, len(prior_losses) // 100)],
        "curves": curves,
    }
    for ablation in result["ablations"].values():
        ablation["absrel_ratio"] = ablation.pop("abs_rel_ratio")
    result.update({k: v for k, v in read_results(args.out).items() if k == "normals"})  # --normals' figures stay
    if "prior + training-free stabiliser" in figures:
        stab = figures["prior + training-free stabiliser"]
        result.update(stabiliser_fields(runs[MAIN], base, stab, ("te", "opw", "abs_rel", "delta1"), ("te", "opw", "abs_rel")))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    report = write_report(result, args.out)
    rows = dict(figures)
    for label, per_seed in runs.items():
        rows[label] = {m: float(np.mean([v[m] for v in per_seed.values()])) for m in ("abs_rel", "delta1", "te", "opw")}
    write_json(
        args.json,
        machine=host,
        tables=[
            table(
                title="Training miniature: held-out rendered scenes",
                setup=f"{s.train_shots} unlabeled training scenes, {s.eval_shots} held-out; prior {s.prior_steps} "
                f"supervised steps; {s.steps} fine-tuning steps; means over seeds {s.seeds} (ablations "
                f"{s.ablation_seeds}); delta1 higher is better, the rest lower",
                baseline="image prior (per frame)",
                metrics={"abs_rel": "AbsRel", "delta1": "delta1", "te": "TE", "opw": "OPW"},
                rows=rows,
                headline="te",
            )
        ],
    )
    log(report)
    log(f"Wrote {args.out}, {args.out.with_suffix('.md')}, total {timings['total']:.0f} s")


def link_plates(folders: list[Path], data: Path) -> Path:
    """`data`: a folder of links to the plates of `folders` (the TRAIN scenes: no labels from here on)."""
    for folder in folders:
        (data / folder.name).mkdir(parents=True)
        for frame in sorted((folder / "plate").iterdir()):  # links per file: rglob skips linked folders
            (data / folder.name / frame.name).symlink_to(frame)
    return data


def read_results(out: Path) -> dict:
    """The JSON an earlier run left at `out` ({} when none): each task's run keeps the other's figures."""
    return json.loads(out.read_text()) if out.is_file() else {}


def cell(summary_: dict) -> str:
    return f"{summary_['mean']:.2f}x ± {summary_['std']:.2f}"


def stabiliser_label(result: dict) -> str:
    """The stabiliser row's name; says when it was re-measured apart from the run (--refresh-stabiliser)."""
    measured = result.get("stabiliser_measured")
    if measured is None:
        return "training-free stabiliser"
    algorithm = measured["stabilizer"]["algorithm"]
    return f"training-free stabiliser (the render's, algorithm {algorithm}; re-measured by --refresh-stabiliser)"


def write_report(result: dict, out: Path) -> str:
    """The Markdown report: the depth table (ratios to the per-frame prior, mean +- std over seeds) and
    curves when the JSON has depth figures, the normal section when it has `normals`."""
    lines = ["# Training miniature (issue 23)", ""]
    if "te_ratio" in result:
        lines += depth_report(result, out) + [""]
    if "normals" in result:
        lines += normal_report(result["normals"])
    text = "\n".join(lines) + "\n"
    out.with_suffix(".md").write_text(text)
    return text


def depth_report(result: dict, out: Path) -> list[str]:
    base = result["baselines"]["image prior (per frame)"]
    s, r = result["settings"], result["recipe"]
    lines = [
        f"Machine: {result['machine']}; load average {result['load_average_start'][0]:.1f} at start, "
        f"{result['load_average_end'][0]:.1f} at the end; total {result['timings_s']['total']:.0f} s "
        f"({', '.join(f'{k} {v:.0f} s' for k, v in result['timings_s'].items() if k != 'total')}).",
        "",
        f"Corpus: {s['prior_shots']} prior scenes (labels), {s['train_shots']} unlabeled training scenes, "
        f"{s['eval_shots']} held-out scenes; {s['frames']} frames at {s['width']}x{s['height']}, {s['samples']} spp. "
        f"Prior: {s['prior_steps']} supervised steps"
        f"{' (reused from the corpus folder: trained by an earlier run with these settings)' if result['prior_reused'] else ''}. "
        f"Fine-tuning: {s['steps']} steps of depth.toml's recipe (w_reg {r['w_reg']}, lr {r['lr']:g} "
        f"{r['schedule']}, gradient clip {r['grad_clip']}, head {'trained' if r['train_head'] else 'frozen'}), "
        f"{s['clip_frames']}-frame clips at {s['crop'][0]}x{s['crop'][1]}; seeds {s['seeds']} "
        f"(ablations {s['ablation_seeds']}){'; QUICK smoke run' if s['quick'] else ''}.",
        "",
        f"Per-frame prior on held-out scenes: AbsRel {base['abs_rel']:.4f}, delta1 {base['delta1']:.3f}, "
        f"TE {base['te']:.4f}, OPW {base['opw']:.4f}.",
        "",
        "| variant (ratio to the prior; mean ± std over seeds) | TE | OPW | AbsRel | delta1 | seeds |",
        "|---|---|---|---|---|---|",
    ]
    if "stabiliser_ratio" in result:
        st = result["stabiliser_ratio"]
        lines.append(f"| prior + {stabiliser_label(result)} | {st['te_ratio']:.2f}x | {st['opw_ratio']:.2f}x | "
                     f"{st['abs_rel_ratio']:.2f}x | {st['delta1_ratio']:.2f}x | - |")
    rows = [(MAIN, result)] + list(result["ablations"].items())
    for label, r in rows:
        lines.append(f"| {label} | {cell(r['te_ratio'])} | {cell(r['opw_ratio'])} | {cell(r['absrel_ratio'])} | "
                     f"{cell(r['delta1_ratio'])} | {len(r['te_ratio']['seeds'])} |")
    picture = plot_curves(result, out.with_name(out.stem + "_curves.png"))
    if picture:
        lines += ["", f"![loss and held-out TE over the fine-tuning steps]({picture.name})"]
    return lines


def plot_curves(result: dict, path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for name, curve in result["curves"].items():
        main = name.startswith(MAIN)
        style = {"lw": 1.6 if main else 0.8, "alpha": 1.0 if main else 0.5}
        for ax, key in zip(axes[:2], ("loss/stable", "loss/reg"), strict=True):
            if curve.get(key):
                steps, values = zip(*curve[key], strict=True)
                ax.plot(steps, values, label=name if main else None, **style)
        if curve.get("heldout_te"):
            steps, values = zip(*curve["heldout_te"], strict=True)
            axes[2].plot(steps, values, marker="o", label=name)
    for ax, title in zip(axes, ("L_stable (training)", "L_reg (training)", "held-out TE"), strict=True):
        ax.set_title(title)
        ax.set_xlabel("step")
    axes[2].axhline(result["baselines"]["image prior (per frame)"]["te"], color="k", ls="--", lw=0.8, label="prior")
    if "prior + training-free stabiliser" in result["baselines"]:
        axes[2].axhline(result["baselines"]["prior + training-free stabiliser"]["te"], color="g", ls=":", lw=0.8,
                        label="prior + stabiliser")
    axes[2].legend(fontsize=6)
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


if __name__ == "__main__":
    main()
