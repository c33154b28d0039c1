"""Gradient checkpointing of the temporal blocks changes memory, not results: same outputs, same
gradients, same state-dict keys as the plain model."""

import torch
from bufferany_training.checkpointing import enable_gradient_checkpointing

from bufferany_core.models.depth import BufferAnytimeConfig, BufferAnytimeDepth
from bufferany_core.models.weights import deterministic_state_dict


def _model() -> BufferAnytimeDepth:
    model = BufferAnytimeDepth(config=BufferAnytimeConfig.for_size("tiny", train_head=True))
    # Every weight random, the output projections included, so the blocks are not the identity.
    model.load_state_dict(deterministic_state_dict(model, seed=4))
    return model


def _grads(model: BufferAnytimeDepth, frames: torch.Tensor) -> tuple[torch.Tensor, dict]:
    out = model(frames)  # (B, T, H, W)
    out.square().mean().backward()
    return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_checkpointed_temporal_blocks_give_the_same_outputs_and_gradients():
    torch.manual_seed(0)
    frames = torch.randn(1, 3, 3, 28, 42)
    plain, checkpointed = _model(), _model()
    assert enable_gradient_checkpointing(checkpointed) == len(checkpointed.temporal_blocks) == 3
    assert plain.state_dict().keys() == checkpointed.state_dict().keys()
    out_plain, grads_plain = _grads(plain, frames)
    out_ckpt, grads_ckpt = _grads(checkpointed, frames)
    torch.testing.assert_close(out_ckpt, out_plain, rtol=0, atol=1e-6)
    assert grads_plain.keys() == grads_ckpt.keys()
    assert any(name.startswith("temporal_blocks.") and g.abs().max() > 0 for name, g in grads_plain.items())
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-5, atol=1e-7, msg=name)
