"""A miniature of Buffer Anytime's experiment: fine-tune temporal layers without labels, measure
against exact depth.

1. An image prior: a tiny Depth Anything V2 (random init) trained per frame, WITH labels, on the
   first half of the Blender sample shot (examples/sample_shot, frames 1001-1020) and on two
   procedural shots (bufferany_core.testing.procedural_shot). Like real per-frame priors, it flickers.
2. Buffer Anytime fine-tuning with `bufferany_training` exactly as `bufferany-train` runs it (frozen
   ViT, temporal blocks + head, w_reg * L_reg + L_stable, DIS flows with cycle and edge masks),
   WITHOUT labels, on the plates of the Blender shot and the two procedural shots.
3. Evaluation on frames the prior never saw labels for (Blender frames 1021-1040) and on a held-out
   procedural shot that neither stage saw: AbsRel (one scale and shift per shot, disparity space),
   temporal gradient error TE and NVDS's OPW (bufferany_core.evaluation.metrics), for the prior and
   the fine-tuned video model, plus the paper's ablations: no cycle mask, no edge mask, w_reg 0.1
   and 3. Ratios are against the prior, measured in the same run.

    .venv/bin/python benchmarks/bench_training_miniature.py [--prior-steps 400] [--steps 80]

Default run: about 10 minutes on 2 CPU cores. Needs examples/sample_shot (bash examples/make_sample_shot.sh).
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from bufferany_training.config import load_config
from bufferany_training.trainer import train
from harness import add_json_option, machine, table, write_json
from safetensors.torch import save_file

from bufferany_core.evaluation.metrics import align_depth, depth_accuracy, depth_opw, temporal_gradient_error
from bufferany_core.evaluation.ground_truth_shot import load_synthetic_shot
from bufferany_core.flow import DISFlow, adjacent_flows
from bufferany_core.frames import FrameSequence, read_frames
from bufferany_core.losses import depth_regularization_loss
from bufferany_core.models.depth import DepthAnythingV2, load_depth_predictor
from bufferany_core.models.depth.preprocess import IMAGENET_MEAN, IMAGENET_STD
from bufferany_core.models.weights import deterministic_state_dict
from bufferany_core.testing.procedural_shot import procedural_shot

REPO = Path(__file__).resolve().parents[1]
SAMPLE_SHOT = REPO / "examples" / "sample_shot"
SIZE = (98, 168)  # training crops (multiples of 14)
PROCESSING = 112  # evaluation: 112 x 196 model input for the 112 x 192 shots
# Procedural camera moves (truck, dolly, pan degrees per frame): two to learn from, one held out.
TRAIN_MOVES = ((0.03, 0.02, 0.1), (-0.02, 0.04, -0.2))
HELD_OUT_MOVE = (0.025, -0.02, 0.25)
ABLATIONS = {
    "Buffer Anytime (w_reg 1)": {},
    "  no cycle mask": {"flow.cycle_mask": False},
    "  no edge mask": {"flow.edge_mask": False},
    "  w_reg 0.1": {"loss.w_reg": 0.1},
    "  w_reg 3": {"loss.w_reg": 3.0},
}


def blender_shot() -> tuple[np.ndarray, np.ndarray]:
    """Model-ready sRGB frames (T, 3, H, W) and metric Z-depth (T, H, W) of the sample shot."""
    shot = load_synthetic_shot(SAMPLE_SHOT)
    sequence = FrameSequence.from_input(shot.plate_pattern)
    frames = np.stack([f.rgb for f in read_frames(sequence, shot.frames)]).transpose(0, 3, 1, 2)
    return frames.astype(np.float32), shot.depth.astype(np.float64)


def procedural(move: tuple[float, float, float], frames: int) -> tuple[np.ndarray, np.ndarray]:
    truck, dolly, pan = move
    shot = procedural_shot(frames=frames, height=112, width=192, truck=truck, dolly=dolly, pan_degrees=pan)
    return shot.plate, 1.0 / shot.inverse_depth[:, 0].astype(np.float64)


def write_png_clip(folder: Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for k, frame in enumerate(frames):
        bgr = np.rint(frame.transpose(1, 2, 0)[:, :, ::-1] * 255).astype(np.uint8)
        cv2.imwrite(str(folder / f"shot.{k + 1:04d}.png"), bgr)


def normalise(x: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (x - mean) / std


def train_prior(labelled: list[tuple[np.ndarray, np.ndarray]], steps: int, out: Path) -> Path:
    """Supervised per-frame training of a tiny Depth Anything V2 on (frames, depth) pairs: random
    crops, flips, affine-invariant loss on inverse depth. Returns its safetensors file."""
    torch.manual_seed(0)
    rng = random.Random(0)
    model = DepthAnythingV2.from_size("tiny")
    model.load_state_dict(deterministic_state_dict(model, seed=0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    pool = [(frames[k], 1.0 / depth[k]) for frames, depth in labelled for k in range(len(frames))]
    model.train()
    for _ in range(steps):
        images, targets = [], []
        for frame, inverse in rng.sample(pool, 4):
            h, w = frame.shape[-2:]
            scale = rng.uniform(0.6, 1.0)
            ch, cw = round(h * scale), round(min(w, h * scale * SIZE[1] / SIZE[0]))
            top, left = rng.randrange(h - ch + 1), rng.randrange(w - cw + 1)
            pair = torch.cat([torch.from_numpy(frame), torch.from_numpy(inverse).float()[None]])
            crop = F.interpolate(pair[None, :, top : top + ch, left : left + cw], size=SIZE, mode="bilinear")[0]
            if rng.random() < 0.5:
                crop = crop.flip(-1)
            images.append(crop[:3])
            targets.append(crop[3])
        prediction = model(normalise(torch.stack(images)))  # (4, h, w)
        loss = depth_regularization_loss(prediction[:, None, None], torch.stack(targets)[:, None, None])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    path = out / "prior.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path


def evaluate(prediction: np.ndarray, frames: np.ndarray, depth: np.ndarray, flows: np.ndarray) -> dict[str, float]:
    aligned, _, _ = align_depth(prediction, depth)
    return {
        "abs_rel": depth_accuracy(prediction, depth)["abs_rel"],
        "te": temporal_gradient_error(aligned, depth),
        "opw": depth_opw(prediction, frames.transpose(0, 2, 3, 1), flows),
    }


def backward_flows(frames: np.ndarray) -> np.ndarray:
    """(T-1, H, W, 2): flow from frame t to frame t-1, as OPW takes it."""
    _, bw = adjacent_flows(torch.from_numpy(frames), DISFlow())
    return bw.permute(0, 2, 3, 1).numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prior-steps", type=int, default=400)
    parser.add_argument("--steps", type=int, default=80, help="fine-tuning steps per variant")
    parser.add_argument("--frames", type=int, default=8, help="frames per training clip")
    add_json_option(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the loader worker (flows) takes the other core
    if not (SAMPLE_SHOT / "cameras.json").is_file():
        raise SystemExit(f"{SAMPLE_SHOT} is missing: run bash examples/make_sample_shot.sh first")
    print(f"Machine: {machine('cpu')}")
    started = time.perf_counter()
    blender_frames, blender_depth = blender_shot()
    half = len(blender_frames) // 2
    train_shots = [procedural(move, 24) for move in TRAIN_MOVES]
    eval_sets = {
        "Blender sample shot, frames 21-40": (blender_frames[half:], blender_depth[half:]),
        "procedural shot, held out": procedural(HELD_OUT_MOVE, 20),
    }
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        prior = train_prior([(blender_frames[:half], blender_depth[:half]), *train_shots], args.prior_steps, tmp)
        print(f"Prior: tiny Depth Anything V2, {args.prior_steps} supervised steps ({time.perf_counter() - t0:.0f} s)")
        data = tmp / "clips"
        write_png_clip(data / "blender", blender_frames)  # the plate only: no labels from here on
        for index, (frames, _) in enumerate(train_shots):
            write_png_clip(data / f"procedural_{index}", frames)

        prior_predictor = load_depth_predictor("depth-anything-v2-tiny", weights=prior, processing_size=PROCESSING)
        flows = {name: backward_flows(frames) for name, (frames, _) in eval_sets.items()}
        results: dict[str, dict[str, dict[str, float]]] = {"image prior (per frame)": {}}
        for name, (frames, depth) in eval_sets.items():
            prediction = prior_predictor.predict(torch.from_numpy(frames))[:, 0].numpy()
            results["image prior (per frame)"][name] = evaluate(prediction, frames, depth, flows[name])
        for label, overrides in ABLATIONS.items():
            t0 = time.perf_counter()
            config = load_config(
                Path("depth.toml"),
                [],
                {
                    "model.name": "buffer-anytime-depth-tiny",
                    "model.weights": str(prior),
                    "data.frames": args.frames,
                    "data.size": list(SIZE),
                    "data.scale": [0.7, 1.0],
                    "data.workers": 1,
                    "data.cache": str(tmp / "flow-cache"),
                    "optim.iterations": args.steps,
                    "run.checkpoint_every": args.steps,
                    "run.log_every": args.steps,
                    "run.gradient_checkpointing": False,
                    "run.progress": False,
                    "run.device": "cpu",
                    **overrides,
                },
            )
            weights = train(config, data=data, out=tmp / f"run{len(results)}", say=lambda _: None)
            video = load_depth_predictor(
                "buffer-anytime-depth-tiny", weights=prior, temporal_weights=weights, processing_size=PROCESSING
            )
            results[label] = {}
            for name, (frames, depth) in eval_sets.items():
                prediction = video.predict(torch.from_numpy(frames))[:, 0].numpy()
                results[label][name] = evaluate(prediction, frames, depth, flows[name])
            print(f"Fine-tuned {label.strip()}: {args.steps} unlabelled steps ({time.perf_counter() - t0:.0f} s)")

    baseline = results["image prior (per frame)"]
    for name in eval_sets:
        print(f"\n{name}  (ratio to the image prior; lower is better for all three)")
        print(f"  {'model':<28} {'AbsRel':>15} {'TE':>15} {'OPW':>15}")
        for label, per_set in results.items():
            cells = "".join(
                f" {per_set[name][m]:7.4f} ({per_set[name][m] / baseline[name][m]:4.2f}x)" for m in ("abs_rel", "te", "opw")
            )
            print(f"  {label:<28}{cells}")
    print(f"\nTotal {time.perf_counter() - started:.0f} s")
    write_json(
        args.json,
        machine=machine("cpu"),
        tables=[
            table(
                title=f"Training miniature: {name}",
                setup=f"prior {args.prior_steps} supervised steps; fine-tuning {args.steps} unlabelled steps "
                f"per variant on {args.frames}-frame clips; lower is better",
                baseline="image prior (per frame)",
                metrics={"abs_rel": "AbsRel", "te": "TE", "opw": "OPW"},
                rows={label.strip(): per_set[name] for label, per_set in results.items()},
                headline="te",
            )
            for name in eval_sets
        ],
    )


if __name__ == "__main__":
    main()
