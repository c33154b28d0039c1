"""bufferany-train, depth: a few steps lower the loss, resuming continues the same trajectory, the
result loads into the depth predictor, bad configs fail clearly. Tiny model, CPU, real EXR clips."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bufferany_training.config import load_config
from bufferany_training.depth_task import DepthTask
from bufferany_training.trainer import FINAL_WEIGHTS, train
from safetensors.torch import load_file
from training_clips import one_torch_thread, train_fixed_clip, write_moving_clip  # noqa: F401 (autouse fixture)

from bufferany_core.errors import BadArgumentsError
from bufferany_core.models.depth import load_depth_predictor
from bufferany_core.models.weights import RandomWeights

TINY = {
    "model.name": "buffer-anytime-depth-tiny",
    "model.weights": "random:0",
    "model.train_head": False,
    "data.frames": 4,
    "data.size": [28, 42],
    "data.workers": 0,
    "run.progress": False,
    "run.gradient_checkpointing": False,
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    write_moving_clip(root / "a", frames=6, size=(42, 63), seed=0)
    write_moving_clip(root / "b", frames=5, size=(42, 63), seed=3)
    return root


def test_a_few_steps_lower_the_loss_on_a_flickering_clip(clips):
    config = load_config(
        Path("depth.toml"), [], {**TINY, "data.scale": [1.0, 1.0], "data.flip": False, "data.strides": [1]}
    )
    torch.manual_seed(0)
    totals, metrics = train_fixed_clip(DepthTask(config), clips, config, lr=1e-4, steps=8)
    # At step 0 the video model is its image prior: all loss is flicker (L_reg is 0).
    assert float(metrics["temporal/warp_error_prior"]) > 0.1
    assert totals[0] == pytest.approx(float(metrics["temporal/warp_error_prior"]), rel=1e-5)
    assert min(totals[-3:]) < 0.97 * totals[0], totals


def _train(clips: Path, out: Path, iterations: int, **extra):
    config = load_config(Path("depth.toml"), [], {**TINY, "optim.iterations": iterations, "run.checkpoint_every": 2, **extra})
    return train(config, data=clips, out=out, say=lambda _: None)


def test_resume_continues_the_same_trajectory(clips, tmp_path):
    """A run re-started with a larger --iterations continues it (a constant learning rate: a cosine
    schedule is stretched to the new length)."""
    constant = {"optim.schedule": "constant"}
    straight = load_file(str(_train(clips, tmp_path / "straight", 4, **constant)))
    _train(clips, tmp_path / "resumed", 2, **constant)
    state = json.loads((tmp_path / "resumed" / "checkpoints" / "step_00000002" / "state.json").read_text())
    assert state["step"] == 2
    resumed = load_file(str(_train(clips, tmp_path / "resumed", 4, **constant)))
    assert straight.keys() == resumed.keys()
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=1e-6, msg=key)
    moved = [k for k in straight if "proj_out" in k and straight[k].abs().max() > 0]
    assert moved, "training did not change the zero-initialised output projections"
    assert sorted(p.name for p in (tmp_path / "resumed" / "checkpoints").glob("step_*")) == [
        "step_00000002",
        "step_00000004",
    ]


def test_a_killed_cosine_run_resumes_on_its_schedule(clips, tmp_path):
    """optim.schedule = "cosine": the learning rate is a function of the step, so a run killed after
    step 2 of 4 and started again ends where the uninterrupted run ends."""
    cosine = {"optim.schedule": "cosine"}
    straight = load_file(str(_train(clips, tmp_path / "straight", 4, **cosine)))
    constant = load_file(str(_train(clips, tmp_path / "constant", 4, **{"optim.schedule": "constant"})))
    _train(clips, tmp_path / "resumed", 4, **cosine)
    checkpoints = tmp_path / "resumed" / "checkpoints"
    shutil.rmtree(checkpoints / "step_00000004")
    (tmp_path / "resumed" / FINAL_WEIGHTS).unlink()
    (checkpoints / "latest").write_text("step_00000002\n")  # as a run killed after step 2 leaves it
    resumed = load_file(str(_train(clips, tmp_path / "resumed", 4, **cosine)))
    for key in straight:
        torch.testing.assert_close(resumed[key], straight[key], rtol=0, atol=1e-6, msg=key)
    assert any(not torch.allclose(straight[k], constant[k]) for k in straight), "the schedule changed nothing"
    with pytest.raises(BadArgumentsError, match="optim.schedule"):
        load_config(Path("depth.toml"), ['optim.schedule="linear"'])


def test_the_trained_weights_load_into_the_depth_predictor(clips, tmp_path):
    weights = _train(clips, tmp_path / "run", 2)
    predictor = load_depth_predictor(
        "buffer-anytime-depth-tiny", weights=RandomWeights(0), temporal_weights=weights, processing_size=28
    )
    saved = load_file(str(weights))
    for key, value in predictor.model.temporal_state_dict().items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0)
    prior = load_depth_predictor("depth-anything-v2-tiny", weights=RandomWeights(0), processing_size=28)
    frames = torch.rand(4, 3, 28, 42)
    assert not torch.allclose(predictor.predict(frames), prior.predict(frames))
    assert predictor.info.untrained  # the prior's weights are random, whatever training did


def test_cli_rejects_an_unknown_config_key(tmp_path, clips):
    config = tmp_path / "bad.toml"
    config.write_text('task = "depth"\n[optim]\nlearning_rate = 1e-4\n')
    result = subprocess.run(
        [sys.executable, "-m", "bufferany_training.cli", "--config", str(config), "--data", str(clips), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "optim.learning_rate" in result.stderr and str(config) in result.stderr
    assert not (tmp_path / "r").exists()


def test_overrides_keep_types_and_name_bad_fields():
    config = load_config(Path("depth.toml"), ["optim.lr=3e-5", "data.size=[112, 196]", "model.weights=random:4"])
    assert config.optim.lr == 3e-5 and config.data.size == (112, 196) and config.model.weights == "random:4"
    assert config.optim.iterations == 20_000 and config.data.frames == 110 and config.loss.w_reg == 0.2
    assert config.optim.schedule == "cosine" and config.optim.grad_clip == 1.0  # the miniature's recipe
    with pytest.raises(BadArgumentsError, match="data.size"):
        load_config(Path("depth.toml"), ["data.size=[100, 196]"])
    with pytest.raises(BadArgumentsError, match="optim.lr"):
        load_config(Path("depth.toml"), ['optim.lr="fast"'])


def test_stable_space_raw_takes_l_stable_on_the_raw_predictions(clips):
    """loss.stable_space: "clip" (default) normalises the clip by median/MAD before L_stable, "raw"
    is the paper's L_stable on the predictions as they are; anything else is refused."""
    fixed = {**TINY, "data.scale": [1.0, 1.0], "data.flip": False, "data.strides": [1]}
    losses = {}
    for space in ("clip", "raw"):
        config = load_config(Path("depth.toml"), [], {**fixed, "loss.stable_space": space})
        torch.manual_seed(0)
        _, metrics = train_fixed_clip(DepthTask(config), clips, config, lr=1e-4, steps=1)
        losses[space] = float(metrics["loss/stable"])
    assert losses["clip"] > 0 and losses["raw"] > 0 and losses["raw"] != pytest.approx(losses["clip"], rel=1e-3)
    with pytest.raises(BadArgumentsError, match="loss.stable_space"):
        load_config(Path("depth.toml"), ['loss.stable_space="log"'])
