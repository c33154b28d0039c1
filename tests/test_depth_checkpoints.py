"""The depth models load the official checkpoints and compute what the official code computes,
proven with the key lists and golden outputs in ../shared/reference (README there). The golden
parity also proves that `weights.deterministic_state_dict` (seed 0) is the README's weight rule."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from depth_support import one_torch_thread  # noqa: F401  (autouse fixture)

from bufferany_core.models.depth import DepthAnythingV2, build_depth_model
from bufferany_core.models.weights import deterministic_state_dict

OFFICIAL_FILES = {
    "vits": "depth_anything_v2_vits_keys.json",
    "vitb": "depth_anything_v2_vitb_keys.json",
    "vitl": "depth_anything_v2_vitl_keys.json",
}


def _key_list(shared_dir, file_name) -> dict[str, tuple[int, ...]]:
    data = json.loads((shared_dir / "reference" / file_name).read_text())
    return {k: tuple(v) for k, v in data["keys"].items()}


@pytest.fixture(scope="module")
def golden(shared_dir):
    with np.load(shared_dir / "reference" / "golden_outputs.npz") as data:
        return {k: torch.from_numpy(data[k]) for k in data.files}


def _close(actual: torch.Tensor, expected: torch.Tensor, *, tol: float = 1e-4) -> None:
    assert actual.shape == expected.shape
    scale = max(1.0, float(expected.abs().max()))
    assert float((actual - expected).abs().max()) <= tol * scale


@pytest.mark.parametrize("size", ["vits", "vitb", "vitl"])
def test_image_model_has_exactly_the_official_keys(shared_dir, size):
    official = _key_list(shared_dir, OFFICIAL_FILES[size])
    with torch.device("meta"):  # no memory, no forward: the check is about names and shapes
        model = DepthAnythingV2.from_size(size)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert list(ours.items()) == list(official.items())
    assert "depth_head.scratch.refinenet4.resConfUnit1.conv1.weight" in ours
    assert "pretrained.mask_token" in ours
    state = {k: torch.empty(shape, device="meta") for k, shape in official.items()}
    model.load_state_dict(state, strict=True, assign=True)
    with pytest.raises(RuntimeError, match="Missing key"):
        model.load_state_dict(
            {k: v for k, v in state.items() if "resConfUnit1" not in k}, strict=True, assign=True
        )


@pytest.mark.parametrize("name", ["video-depth-anything-small", "buffer-anytime-depth-small"])
def test_video_models_take_the_official_files(shared_dir, name):
    with torch.device("meta"):
        model = build_depth_model(name)
    if name.startswith("video"):
        ours, official = model, _key_list(shared_dir, "video_depth_anything_vits_keys.json")
    else:  # the prior part of Buffer Anytime is exactly Depth Anything V2 Small
        ours, official = model.prior, _key_list(shared_dir, OFFICIAL_FILES["vits"])
    assert [(k, tuple(v.shape)) for k, v in ours.state_dict().items()] == list(official.items())


@pytest.fixture(scope="module")
def vits_model():
    model = DepthAnythingV2.from_size("vits").eval()
    model.load_state_dict(deterministic_state_dict(model, seed=0), strict=True)
    return model


@pytest.mark.parametrize("hw", ["140x196", "98x98"])
def test_depth_anything_v2_small_matches_golden_outputs(vits_model, golden, hw):
    x = golden[f"dav2_vits_in_{hw}"]
    captured = {}
    last_conv = vits_model.depth_head.scratch.output_conv2[2]
    handle = last_conv.register_forward_hook(lambda _m, _i, out: captured.setdefault("prerelu", out))
    try:
        with torch.no_grad():
            taps = vits_model.pretrained(x)
            out = vits_model(x)
    finally:
        handle.remove()
    for i, (tokens, cls) in enumerate(taps):
        _close(tokens, golden[f"dav2_vits_tokens{i}_{hw}"])
        _close(cls, golden[f"dav2_vits_cls{i}_{hw}"])
    _close(captured["prerelu"], golden[f"dav2_vits_prerelu_{hw}"])
    _close(out, golden[f"dav2_vits_out_{hw}"])


def test_position_embedding_resize_follows_the_official_formula(vits_model):
    # timm's resize (exact size, antialias) gives other values: the parity above depends on this.
    backbone = vits_model.pretrained.requires_grad_(False)
    ours = backbone.resized_pos_embed(10, 14)[:, 1:]
    grid = backbone.pos_embed[:, 1:].reshape(1, 37, 37, -1).permute(0, 3, 1, 2)
    timm_like = torch.nn.functional.interpolate(grid, size=(10, 14), mode="bicubic", antialias=True)
    timm_like = timm_like.permute(0, 2, 3, 1).reshape(1, 140, -1)
    assert ours.shape == timm_like.shape
    assert float((ours - timm_like).abs().max()) > 1e-3
    assert torch.equal(backbone.resized_pos_embed(37, 37), backbone.pos_embed)


def test_video_depth_anything_small_matches_golden_output(golden):
    model = build_depth_model("video-depth-anything-small").eval()
    model.load_state_dict(deterministic_state_dict(model, seed=0), strict=True)
    with torch.no_grad():
        out = model(golden["vda_vits_in_4x140x196"])
    _close(out, golden["vda_vits_out_4x140x196"])
