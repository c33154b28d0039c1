"""`bufferany-train`: fine-tune the temporal layers of a Buffer Anytime model on unlabeled clips.

    bufferany-train --config depth.toml --data CLIPS/ --out runs/depth1 [--set optim.lr=5e-5 ...]
    torchrun --nproc_per_node=8 -m bufferany_training.cli --config depth.toml --data CLIPS/ --out runs/depth1

Re-running with the same --out continues from its latest checkpoint. Exits with
`bufferany_core.errors.ExitCode`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from bufferany_core.cli_support import run_cli
from bufferany_core.errors import ExitCode

PROG = "bufferany-train"

# Explicit flags, each a shorthand for one --set key.
SHORTHANDS = {
    "model": "model.name",
    "weights": "model.weights",
    "models_dir": "model.models_dir",
    "iterations": "optim.iterations",
    "lr": "optim.lr",
    "batch_size": "optim.batch_size",
    "frames": "data.frames",
    "workers": "data.workers",
    "cache": "data.cache",
    "device": "run.device",
    "seed": "seed",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Fine-tune the temporal layers of a Buffer Anytime depth or normal model on unlabeled "
        "clips (movie files or image sequences), with the frozen image model and optical flow as teachers.",
        epilog="Several GPUs or machines: launch with torchrun (see docs/training.md).",
    )
    p.add_argument("--config", type=Path, help="TOML config: a path, or depth.toml / normal.toml (shipped)")
    p.add_argument("--data", type=Path, required=True, help="folder of clips: movies and image sequences")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs, final weights)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=5e-5 --set data.size=[224,392]")
    p.add_argument("--model", help="model name (model.name)")
    p.add_argument("--weights", help="the prior's weights: a path or random[:SEED] (model.weights)")
    p.add_argument("--models-dir", help="folder of downloaded weights (model.models_dir)")
    p.add_argument("--iterations", type=int, help="total optimiser steps (optim.iterations)")
    p.add_argument("--lr", type=float, help="learning rate (optim.lr)")
    p.add_argument("--batch-size", type=int, help="clips per GPU and step (optim.batch_size)")
    p.add_argument("--frames", type=int, help="frames per clip (data.frames)")
    p.add_argument("--workers", type=int, help="loader processes per GPU (data.workers)")
    p.add_argument("--cache", help="flow cache folder (data.cache)")
    p.add_argument("--device", help="auto, cpu or cuda (run.device)")
    p.add_argument("--seed", type=int, help="run seed (seed)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (logs only)")
    return p


def _flag_values(ns: argparse.Namespace) -> dict[str, object]:
    values: dict[str, object] = {key: getattr(ns, attr) for attr, key in SHORTHANDS.items() if getattr(ns, attr) is not None}
    if ns.no_progress:
        values["run.progress"] = False
    return values


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)

    def body() -> int:
        from bufferany_training.config import load_config

        config = load_config(ns.config, ns.overrides, _flag_values(ns))  # fail fast, before importing torch
        from bufferany_training.trainer import train

        train(config, data=ns.data, out=ns.out)
        return ExitCode.OK

    return run_cli(
        PROG,
        body,
        parser=parser,
        interrupted="interrupted; re-run with the same --out to continue from the last checkpoint",
    )


if __name__ == "__main__":
    sys.exit(main())
