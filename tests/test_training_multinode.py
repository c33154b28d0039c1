"""bufferany-train on two "machines": two torchrun agents on loopback (`--nnodes 2`, one process
each, c10d rendezvous on 127.0.0.1, Gloo on the CPU) train one run; every step's checkpoint records
identical weight digests for both ranks. The run is then resumed on ONE node (two processes, the same
world size, so the same global batch) and must end where an uninterrupted run ends, weight for weight.

A resume on another world size (one process) continues the run too, but with another global batch
and other samples per step: a different trajectory by design, so it is not compared here."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_clips import write_moving_clip

TORCHRUN = Path(sys.executable).with_name("torchrun")
TRAIN = [
    "-m", "bufferany_training.cli", "--config", "depth.toml",
    "--model", "buffer-anytime-depth-tiny", "--weights", "random:0", "--device", "cpu",
    "--frames", "3", "--workers", "0", "--no-progress", "--lr", "1e-3",
    "--set", "data.size=[28, 42]", "--set", "run.checkpoint_every=1", "--set", "run.keep_checkpoints=10",
    "--set", "model.train_head=false",
    "--set", "optim.schedule=constant",  # the run is lengthened with --iterations, which stretches a cosine schedule
]  # fmt: skip
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train_args(clips: Path, out: Path, iterations: int) -> list[str]:
    return [*TRAIN, "--data", str(clips), "--out", str(out), "--iterations", str(iterations)]


_STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _no_process_left_behind():
    yield
    while _STARTED:
        process = _STARTED.pop()
        if process.poll() is None:  # a failed assertion left it running
            process.kill()
            process.communicate()


def _start(args: list[str]) -> subprocess.Popen:
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV)
    _STARTED.append(process)
    return process


def _finish(process: subprocess.Popen, what: str) -> str:
    """Wait for `process`; kill it (and fail) past 5 minutes, fail with its output if it failed."""
    try:
        output, _ = process.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
        pytest.fail(f"{what} timed out:\n{output[-3000:]}")
    assert process.returncode == 0, f"{what} failed:\n{output[-4000:]}"
    return output


def _node_command(node: int, port: int, run_id: str, train: list[str]) -> list[str]:
    """One of two torchrun agents meeting at 127.0.0.1:port (node 0 hosts the rendezvous store)."""
    return [
        str(TORCHRUN), "--nnodes=2", "--nproc_per_node=1", f"--node_rank={node}",
        "--rdzv_backend=c10d", f"--rdzv_endpoint=127.0.0.1:{port}", f"--rdzv_id={run_id}",
        f"--rdzv_conf=is_host={'true' if node == 0 else 'false'},join_timeout=120", *train,
    ]  # fmt: skip


def _digests(out: Path, step: int) -> tuple[int, list[str]]:
    state = json.loads((out / "checkpoints" / f"step_{step:08d}" / "state.json").read_text())
    return state["world_size"], state["rank_weight_digests"]


@pytest.mark.slow
def test_two_nodes_on_loopback_stay_identical_and_resume_on_one_node(tmp_path):
    clips = tmp_path / "clips"
    write_moving_clip(clips / "a", frames=5, size=(42, 63), seed=0)
    write_moving_clip(clips / "b", frames=5, size=(42, 63), seed=5)
    straight, multi = tmp_path / "straight", tmp_path / "multinode"

    # The uninterrupted reference (one node, two processes, 4 steps) runs beside the two-node run.
    reference = _start(
        [str(TORCHRUN), "--standalone", "--nproc_per_node=2", *_train_args(clips, straight, 4)]
    )
    port, run_id = _free_port(), f"bufferany-test-{uuid.uuid4().hex[:8]}"
    nodes = [_start(_node_command(node, port, run_id, _train_args(clips, multi, 2))) for node in (0, 1)]
    outputs = [_finish(p, f"node {n}") for n, p in enumerate(nodes)]
    assert any("2 rank(s)" in text for text in outputs), outputs
    for step in (1, 2):
        world, digests = _digests(multi, step)
        assert world == 2 and len(digests) == 2 and digests[0] == digests[1], f"step {step}: {digests}"
    assert _digests(multi, 1)[1][0] != _digests(multi, 2)[1][0]  # the weights did move

    # Resume the two-node run on one node with two processes.
    resumed = _finish(
        _start([str(TORCHRUN), "--standalone", "--nproc_per_node=2", *_train_args(clips, multi, 4)]), "resume"
    )
    assert "Resuming" in resumed and "from step 2" in resumed, resumed[-2000:]
    for step in (3, 4):
        world, digests = _digests(multi, step)
        assert world == 2 and digests[0] == digests[1], f"step {step}: {digests}"
    _finish(reference, "uninterrupted run")
    for step in (1, 2, 3, 4):  # the same trajectory, step by step
        assert _digests(multi, step)[1] == _digests(straight, step)[1], f"step {step}"
    a, b = load_file(str(straight / "temporal.safetensors")), load_file(str(multi / "temporal.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=0, msg=key)
