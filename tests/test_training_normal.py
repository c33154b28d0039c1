"""bufferany-train, normals: deferred back-propagation through chunked VAE decoding gives the
gradients of full back-propagation; a few steps lower the loss. Tiny model, CPU."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from bufferany_training.config import load_config
from bufferany_training.normal_task import NormalTask, deferred_decode_backward
from training_clips import one_torch_thread, tiny_normal_config, train_fixed_clip, write_moving_clip  # noqa: F401 (autouse fixture)

from bufferany_core.losses import normal_latent_loss, stable_loss
from bufferany_core.models.normal.build import random_image_model, video_model
from bufferany_core.models.normal.configs import TEMPORAL_CONFIGS


def _temporal_grads(model) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in model.temporal.named_parameters() if p.grad is not None}


def test_deferred_backprop_equals_full_backprop():
    torch.manual_seed(0)
    model = video_model(random_image_model("tiny", seed=0), TEMPORAL_CONFIGS["tiny"], seed=1)
    with torch.no_grad():  # leave the zero init: every temporal weight must receive a gradient
        for p in model.temporal.parameters():
            p.add_(0.05 * torch.randn_like(p))
    for p in model.temporal.parameters():
        p.requires_grad_(True)
    b, t, size = 1, 5, 32  # 5 frames in chunks of 2: a short last chunk and pairs across chunk borders
    rgb_latents = torch.randn(b, t, 4, size // 8, size // 8)
    target = torch.randn(b, t, 4, size // 8, size // 8)
    flows_fw = 1.5 * torch.randn(b, t - 1, 2, size, size)
    flows_bw = -flows_fw + 0.3 * torch.randn_like(flows_fw)
    valid_fw = torch.rand(b, t - 1, 1, size, size) > 0.2
    valid_bw = torch.rand(b, t - 1, 1, size, size) > 0.2
    pairs = (flows_fw, flows_bw, valid_fw, valid_bw)
    w_reg, w_stable = 0.7, 1.3

    latents = model.predict_latent(rgb_latents)
    decoded = model.decode(latents.flatten(0, 1)).unflatten(0, (b, t))
    full_loss = w_reg * normal_latent_loss(latents, target) + w_stable * stable_loss(decoded, *pairs)
    full_loss.backward()
    full = _temporal_grads(model)
    model.zero_grad(set_to_none=True)

    latents = model.predict_latent(rgb_latents)
    stable = deferred_decode_backward(
        latents,
        model.decode,
        lambda frames: stable_loss(frames, *pairs),
        chunk=2,
        frame_weight=w_stable,
        latent_loss=w_reg * normal_latent_loss(latents, target),
    )
    deferred = _temporal_grads(model)

    assert stable.item() == pytest.approx(stable_loss(decoded, *pairs).item(), rel=1e-6)
    assert full.keys() == deferred.keys() and len(full) == len(list(model.temporal.parameters()))
    assert all(g.abs().max() > 0 for g in full.values())
    for name in full:
        torch.testing.assert_close(deferred[name], full[name], rtol=1e-4, atol=1e-7, msg=name)


@pytest.mark.slow
def test_a_few_normal_steps_lower_the_loss(tmp_path):
    write_moving_clip(tmp_path / "clips" / "a", frames=4, size=(32, 48))
    config = tiny_normal_config()
    torch.manual_seed(0)
    totals, metrics = train_fixed_clip(NormalTask(config), tmp_path / "clips", config, lr=1e-3, steps=4)
    assert totals[0] == pytest.approx(float(metrics["temporal/warp_error_prior"]), rel=1e-5)
    assert totals[-1] < 0.95 * totals[0], totals
    assert float(metrics["temporal/warp_error_video"]) < float(metrics["temporal/warp_error_prior"])


def test_the_edge_mask_follows_the_task_and_is_refused_for_normals(tmp_path):
    normal = ['task="normal"', "data.size=[64, 64]"]
    assert load_config(None).flow.edge_mask and not load_config(None, normal).flow.edge_mask
    assert not load_config(Path("normal.toml")).flow.edge_mask and load_config(Path("depth.toml")).flow.edge_mask
    clips = write_moving_clip(tmp_path / "clips" / "a", frames=3, size=(32, 32))
    args = [f"--set={text}" for text in [*normal, "flow.edge_mask=true"]]
    result = subprocess.run(
        [sys.executable, "-m", "bufferany_training.cli", *args, "--data", str(clips), "--out", str(tmp_path / "r")],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert "flow.edge_mask" in result.stderr and "normal" in result.stderr
    assert not (tmp_path / "r").exists()
