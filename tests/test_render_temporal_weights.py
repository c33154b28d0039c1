"""Trained temporal layers (what `bufferany-train` writes) load straight into `bufferany-render`
and the pipeline: they change the passes, the header names their sha256, on a real prior the output
is no longer marked untrained, and a re-run with them re-renders frames written without them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from pipeline_plates import write_plate
from safetensors.torch import save_file

from bufferany_core import conventions
from bufferany_core.errors import ExitCode
from bufferany_core.frames import read_channels, read_info
from bufferany_core.jobs import RenderJob
from bufferany_core.models.depth import BufferAnytimeConfig, build_depth_model
from bufferany_core.models.normal.build import random_image_model, video_model
from bufferany_core.models.normal.configs import TEMPORAL_CONFIGS
from bufferany_core.models.temporal_weights import save_temporal_weights
from bufferany_core.models.weights import deterministic_state_dict, sha256_of
from bufferany_core.pipeline.cli import main
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.render import run_render

CLI = [sys.executable, "-m", "bufferany_core.pipeline.cli"]
MODEL = "buffer-anytime-depth-tiny"
TINY = ["--passes", "depth", "--depth-model", MODEL, "--weights", "random", "--device", "cpu",
        "--window", "4", "--overlap", "1", "--processing-size", "28"]
SHOT = range(1, 7)


def render(*args):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def depth_model():
    """A tiny depth video model as training leaves it: temporal output projections no longer zero."""
    config = BufferAnytimeConfig.for_size("tiny")
    model = build_depth_model(MODEL, config=config)
    model.load_prior_state_dict(deterministic_state_dict(model.prior, seed=0))
    with torch.no_grad():
        for p in model.trainable_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model, config


@pytest.fixture(scope="module")
def trained(tmp_path_factory, depth_model) -> Path:
    model, config = depth_model
    path = tmp_path_factory.mktemp("run") / "temporal.safetensors"
    save_temporal_weights(path, model, prior_sha256=None)
    return path


@pytest.mark.slow
def test_trained_temporal_weights_change_the_passes_and_are_recorded(tmp_path, trained):
    plate = write_plate(tmp_path / "plate", SHOT)
    out = str(tmp_path / "out" / "shot_buffers.####.exr")
    frame = out.replace("####", "0003")

    prior_only = render(plate, "-o", out, *TINY)
    assert prior_only.returncode == 0, prior_only.stderr
    before = read_channels(frame, [conventions.DEPTH_CHANNEL])
    assert conventions.HEADER.temporal_weights_sha256 not in read_info(frame).metadata

    refused = render(plate, "-o", out, *TINY, "--depth-temporal-weights", trained)
    assert refused.returncode == ExitCode.OUTPUT_CONFLICT and "temporal_weights" in refused.stderr  # never silently
    with_temporal = render(plate, "-o", out, *TINY, "--depth-temporal-weights", trained, "--overwrite")
    assert with_temporal.returncode == 0, with_temporal.stderr
    assert "already rendered" not in with_temporal.stdout  # other settings: every frame again
    assert with_temporal.stdout.count("written:") == len(SHOT)
    after = read_channels(frame, [conventions.DEPTH_CHANNEL])
    assert np.abs(after - before).max() > 1e-3 * (before.max() - before.min())

    meta = read_info(frame).metadata
    assert meta[conventions.HEADER.temporal_weights_sha256] == f"depth:{sha256_of(trained)}"
    assert meta[conventions.HEADER.untrained] == 1  # trained layers on a random prior mean nothing
    again = render(plate, "-o", out, *TINY, "--depth-temporal-weights", trained)
    assert again.returncode == 0 and again.stdout.count("already rendered") == len(SHOT)


def test_missing_temporal_weights_file_exits_10_naming_it(tmp_path, capsys):
    plate = write_plate(tmp_path / "plate", range(1, 3))
    missing = tmp_path / "run" / "temporal.safetensors"
    assert main([plate, *TINY, "--depth-temporal-weights", str(missing)]) == ExitCode.MISSING_WEIGHTS
    assert str(missing) in capsys.readouterr().err
    assert not (tmp_path / "plate" / "shot_buffers.0001.exr").exists()


def test_temporal_weights_for_a_pass_not_rendered_are_refused(tmp_path, trained, capsys):
    plate = write_plate(tmp_path / "plate", range(1, 3))
    assert main([plate, *TINY, "--normal-temporal-weights", str(trained)]) == ExitCode.BAD_ARGUMENTS
    assert "--normal-temporal-weights" in capsys.readouterr().err


def test_trained_layers_on_a_real_prior_are_not_marked_untrained(tmp_path, depth_model, trained):
    model, _ = depth_model
    prior = tmp_path / "prior.safetensors"
    save_file({k: v.contiguous() for k, v in model.prior.state_dict().items()}, str(prior))
    plate = write_plate(tmp_path / "plate", range(1, 4))
    job = RenderJob(
        input=plate, output=str(tmp_path / "out" / "o.####.exr"), passes=("depth",), depth_model=MODEL,
        weights=str(prior), depth_temporal_weights=str(trained), device="cpu",
        window=4, overlap=1, depth_processing_size=28, normal_processing_size=28,
    )
    result = run_render(job, predictors=PredictorCache())
    assert not result.untrained
    meta = read_info(result.output_pattern.replace("%04d", "0002")).metadata
    assert meta[conventions.HEADER.untrained] == 0
    assert meta[conventions.HEADER.weights_sha256] == f"depth:{sha256_of(prior)}+{sha256_of(trained)}"
    assert meta[conventions.HEADER.temporal_weights_sha256] == f"depth:{sha256_of(trained)}"


def test_normal_temporal_weights_reach_the_normal_model(tmp_path):
    model = video_model(random_image_model("tiny", seed=0), TEMPORAL_CONFIGS["tiny"], seed=0)
    for block in model.temporal.blocks.values():
        torch.nn.init.normal_(block.proj_out.weight, std=0.05, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "normal_temporal.safetensors"
    save_temporal_weights(path, model, prior_sha256=None)
    plate = write_plate(tmp_path / "plate", range(1, 4))
    cache = PredictorCache()
    normals = {}
    for name, temporal in (("prior", None), ("trained", str(path))):
        job = RenderJob(
            input=plate, output=str(tmp_path / name / "o.####.exr"), passes=("normal",),
            normal_model="buffer-anytime-normal-tiny", weights="random", normal_temporal_weights=temporal,
            device="cpu", window=3, overlap=1, depth_processing_size=32, normal_processing_size=32,
        )
        frame = run_render(job, predictors=cache).output_pattern.replace("%04d", "0002")
        normals[name] = read_channels(frame, conventions.NORMAL_CHANNELS)
        if temporal:
            assert read_info(frame).metadata[conventions.HEADER.temporal_weights_sha256] == f"normal:{sha256_of(path)}"
    assert np.abs(normals["trained"] - normals["prior"]).max() > 1e-3
