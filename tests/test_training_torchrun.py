"""bufferany-train under a real `torchrun --nproc_per_node=2` on the CPU (Gloo): the two ranks
train on different clips and keep identical weights (DistributedDataParallel averages gradients)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file
from training_clips import write_moving_clip


@pytest.mark.slow
def test_two_cpu_ranks_keep_identical_weights(tmp_path):
    clips = tmp_path / "clips"
    write_moving_clip(clips / "a", frames=5, size=(42, 63), seed=0)
    write_moving_clip(clips / "b", frames=5, size=(42, 63), seed=5)
    out = tmp_path / "run"
    torchrun = Path(sys.executable).with_name("torchrun")
    command = [
        str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "bufferany_training.cli",
        "--config", "depth.toml", "--data", str(clips), "--out", str(out),
        "--model", "buffer-anytime-depth-tiny", "--weights", "random:0", "--device", "cpu",
        "--frames", "3", "--iterations", "3", "--workers", "1", "--no-progress",
        "--set", "data.size=[28, 42]", "--set", "run.checkpoint_every=1", "--set", "run.gradient_checkpointing=true",
        "--lr", "1e-3",
    ]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 rank(s)" in result.stdout
    for step in (1, 2, 3):
        state = json.loads((out / "checkpoints" / f"step_{step:08d}" / "state.json").read_text())
        assert state["world_size"] == 2
        digests = state["rank_weight_digests"]
        assert len(digests) == 2 and digests[0] == digests[1], f"step {step}: {digests}"
    first = json.loads((out / "checkpoints" / "step_00000002" / "state.json").read_text())["rank_weight_digests"][0]
    assert first != digests[0]  # the weights did move between steps
    final = load_file(str(out / "temporal.safetensors"))
    saved = load_file(str(out / "checkpoints" / "step_00000003" / "temporal.safetensors"))
    assert final.keys() == saved.keys() and all((final[k] == saved[k]).all() for k in final)
    assert (out / "logs").is_dir() and any((out / "logs").iterdir())
