"""Buffer Anytime's video depth model: starts as its image prior, trains only what is configured,
handles batch and frame dimensions, and its temporal blocks really mix frames."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from depth_support import one_torch_thread  # noqa: F401  (autouse fixture)

from bufferany_core.models.depth import (
    BufferAnytimeConfig,
    BufferAnytimeDepth,
    build_depth_model,
)
from bufferany_core.models.temporal import TemporalBlock, zero_initialised_prefixes
from bufferany_core.models.weights import deterministic_state_dict


def _model(*, train_head: bool = False, seed: int = 0) -> BufferAnytimeDepth:
    model = build_depth_model(
        "buffer-anytime-depth-tiny", config=BufferAnytimeConfig.for_size("tiny", train_head=train_head)
    )
    model.load_prior_state_dict(deterministic_state_dict(model.prior, seed=seed))
    blocks = deterministic_state_dict(
        model.temporal_blocks, seed=seed, skip_prefixes=zero_initialised_prefixes(model.temporal_blocks)
    )
    model.temporal_blocks.load_state_dict(blocks)
    return model.eval()


def _frames(b: int, t: int, h: int = 28, w: int = 42, seed: int = 1) -> torch.Tensor:
    return torch.randn(b, t, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _make_temporal_nonzero(model: BufferAnytimeDepth) -> None:
    with torch.no_grad():
        for block in model.temporal_blocks:
            block.proj_out.weight.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(3))


def test_video_model_equals_image_model_at_initialisation():
    model = _model()
    x = _frames(2, 5)
    with torch.no_grad():
        video = model(x)
        per_frame = torch.stack([model.prior(x[:, i]) for i in range(x.shape[1])], dim=1)
    assert video.shape == (2, 5, 28, 42)
    assert float((video - per_frame).abs().max()) < 1e-5
    assert float((model.image_forward(x) - per_frame).abs().max()) < 1e-5
    assert float(video.abs().max()) > 0  # not trivially equal


@pytest.mark.parametrize("train_head", [False, True])
def test_video_model_with_trainable_head_also_starts_as_the_prior(train_head):
    model = _model(train_head=train_head)
    x = _frames(1, 3)
    with torch.no_grad():
        video, prior = model.forward_with_prior(x)
    assert float((video - prior).abs().max()) < 1e-5


@pytest.mark.parametrize("train_head", [False, True])
def test_gradients_reach_only_the_configured_parameters(train_head):
    model = _model(train_head=train_head).train()
    _make_temporal_nonzero(model)  # so that gradients flow into the blocks' inner layers too
    model(_frames(1, 3)).square().mean().backward()

    names_with_grad = {
        n for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0
    }
    trainable = {id(p) for p in model.trainable_parameters()}
    for name, param in model.named_parameters():
        if name.startswith("prior."):  # the ViT and the prior's own head: never
            assert param.grad is None, name
            assert not param.requires_grad, name
        assert param.requires_grad == (id(param) in trainable), name
    assert any(n.startswith("temporal_blocks.") and ".transformer_blocks." in n for n in names_with_grad)
    assert any(n.startswith("video_head.") for n in names_with_grad) == train_head
    assert not any(n.startswith("prior.pretrained.") for n in names_with_grad)


def test_batch_and_frame_dimensions_stay_independent():
    model = _model()
    _make_temporal_nonzero(model)
    a, b = _frames(1, 4, seed=1), _frames(1, 4, seed=2)
    with torch.no_grad():
        together = model(torch.cat([a, b]))
        alone = torch.cat([model(a), model(b)])
        assert together.shape == (2, 4, 28, 42)
        assert float((together - alone).abs().max()) < 1e-5  # windows in a batch do not see each other
        changed = a.clone()
        changed[0, 3] = _frames(1, 1, seed=9)[0, 0]
        out, ref = model(changed), model(a)
    # frame 3 changed: the other frames' predictions change too (attention over time) ...
    assert float((out[0, 0] - ref[0, 0]).abs().max()) > 1e-4
    # ... while the prior, frame by frame, does not
    with torch.no_grad():
        assert torch.equal(model.image_forward(changed)[0, 0], model.image_forward(a)[0, 0])


def test_wrong_shapes_and_too_long_windows_are_refused():
    model = _model()
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model(torch.zeros(2, 3, 42, 56))
    with pytest.raises(ValueError, match="multiple of 14"):
        model(torch.zeros(1, 2, 3, 40, 56))
    with pytest.raises(ValueError, match="exceeds"):
        model(torch.zeros(1, model.max_frames + 1, 3, 14, 14))
    with pytest.raises(ValueError, match="insert_after"):
        BufferAnytimeDepth(config=replace(BufferAnytimeConfig.for_size("tiny"), insert_after=("layer3",)))


def test_temporal_block_is_identity_at_init_and_attends_over_time():
    block = TemporalBlock(channels=16, num_heads=4, max_frames=8, norm_groups=4)
    x = torch.randn(2 * 3, 16, 5, 7)  # (B*T, C, H, W), B=2, T=3
    assert torch.equal(block(x, 3), x)
    with torch.no_grad():
        block.proj_out.weight.normal_(0, 0.5)
    y = block(x, 3)
    x2 = x.clone()
    x2[2, :, 1, 1] += 1.0  # window 0, frame 2, one pixel
    y2 = block(x2, 3)
    diff = (y2 - y).abs().sum(dim=1)  # (B*T, H, W)
    assert diff[0, 1, 1] > 0 and diff[1, 1, 1] > 0  # other frames of that window, same pixel
    assert diff[3:].sum() == 0  # the other window is untouched
    with pytest.raises(ValueError, match="T=4"):
        block(x, 4)
    with pytest.raises(ValueError, match="longer than"):
        block(torch.randn(9, 16, 2, 2), 9)
