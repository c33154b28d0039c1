"""Loading depth models by name: weight files (.pth weights-only, .safetensors), random weights,
temporal weights beside the prior's, registry resolution and what the predictor returns."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
import torch
from depth_support import one_torch_thread  # noqa: F401  (autouse fixture)
from safetensors.torch import save_file

from bufferany_core.errors import BadArgumentsError, MissingWeightsError
from bufferany_core.models import weights
from bufferany_core.models.api import PassPredictor
from bufferany_core.models.catalog import DEFAULT_MODELS, DEPTH_MODELS
from bufferany_core.models.depth import (
    BufferAnytimeConfig,
    build_depth_model,
    load_depth_predictor,
)
from bufferany_core.models.depth.preprocess import processing_shape
from bufferany_core.models.temporal_weights import read_temporal_weights, save_temporal_weights
from bufferany_core.models.weights import (
    MODELS_ENV,
    RandomWeights,
    deterministic_state_dict,
    get_spec,
    sha256_of,
)

SIZE = 42  # processing size for tiny models: 3x3 patches and up, fast on a CPU


def _plate(t: int = 3, h: int = 30, w: int = 50) -> torch.Tensor:
    return torch.rand(t, 3, h, w, generator=torch.Generator().manual_seed(5))


def test_names_defaults_and_registry():
    assert DEFAULT_MODELS["depth"] == "video-depth-anything-small"
    assert {
        "depth-anything-v2-small",
        "depth-anything-v2-base",
        "depth-anything-v2-large",
        "video-depth-anything-small",
        "buffer-anytime-depth-small",
        "buffer-anytime-depth-base",
        "buffer-anytime-depth-large",
    } <= set(DEPTH_MODELS)
    small, large = get_spec("depth-anything-v2-small"), get_spec("depth-anything-v2-large")
    assert (small.repo_id, small.filename, small.licence) == (
        "depth-anything/Depth-Anything-V2-Small",
        "depth_anything_v2_vits.pth",
        "Apache-2.0",
    )
    assert large.licence == "CC-BY-NC-4.0" and get_spec("depth-anything-v2-base").licence == "CC-BY-NC-4.0"
    vda = get_spec("video-depth-anything-small")
    assert (vda.repo_id, vda.filename, vda.licence) == (
        "depth-anything/Video-Depth-Anything-Small",
        "video_depth_anything_vits.pth",
        "Apache-2.0",
    )


@pytest.mark.parametrize(
    "name", ["depth-anything-v2-tiny", "video-depth-anything-tiny", "buffer-anytime-depth-tiny"]
)
def test_predictor_returns_inverse_depth_at_plate_resolution(name):
    predictor = load_depth_predictor(name, weights=RandomWeights(0), processing_size=SIZE)
    assert all(hasattr(predictor, attr) for attr in PassPredictor.__annotations__) and callable(
        predictor.predict
    )
    out = predictor.predict(_plate())
    assert out.shape == (3, 1, 30, 50) and out.dtype == torch.float32
    assert bool((out >= 0).all()) and float(out.std()) > 0
    assert predictor.info.pass_name == "depth" and predictor.info.model_id == name
    assert predictor.info.untrained and predictor.info.weights_sha256 is None
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\)"):
        predictor.predict(torch.rand(3, 4, 30, 50))


def test_random_video_models_start_equal_to_their_image_model():
    plate = _plate(4)
    image = load_depth_predictor(
        "depth-anything-v2-tiny", weights=RandomWeights(3), processing_size=SIZE
    ).predict(plate)
    video = load_depth_predictor(
        "buffer-anytime-depth-tiny", weights=RandomWeights(3), processing_size=SIZE
    ).predict(plate)
    other_seed = load_depth_predictor(
        "depth-anything-v2-tiny", weights=RandomWeights(4), processing_size=SIZE
    ).predict(plate)
    assert float((image - video).abs().max()) < 1e-5
    assert float((image - other_seed).abs().max()) > 1e-3


def test_processing_shape_follows_the_official_resize():
    assert processing_shape(1080, 1920, 518) == (518, 924)
    assert processing_shape(518, 518, 518) == (518, 518)
    assert processing_shape(2160, 3840, 518) == (518, 924)
    assert processing_shape(1920, 1080, 518) == (924, 518)  # portrait
    assert processing_shape(100, 100, 500) == (504, 504)  # never below the requested size
    for h, w in [(1080, 1920), (857, 1231), (480, 640)]:
        ph, pw = processing_shape(h, w, 518)
        assert ph % 14 == 0 and pw % 14 == 0 and min(ph, pw) >= 518
        assert abs(ph / pw - h / w) < 0.02


def _state_file(tmp_path, model, suffix: str):
    state = deterministic_state_dict(model, seed=7)
    path = tmp_path / f"weights{suffix}"
    if suffix == ".pth":
        torch.save(state, path)
    else:
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weight_files_load_like_random_weights(tmp_path, suffix):
    model = build_depth_model("depth-anything-v2-tiny")
    path = _state_file(tmp_path, model, suffix)
    from_file = load_depth_predictor("depth-anything-v2-tiny", weights=path, processing_size=SIZE)
    from_rule = load_depth_predictor("depth-anything-v2-tiny", weights=RandomWeights(7), processing_size=SIZE)
    plate = _plate(2)
    assert torch.equal(from_file.predict(plate), from_rule.predict(plate))
    assert from_file.info.weights_sha256 == sha256_of(path) and not from_file.info.untrained


class _NotWeights:
    pass


def test_pickled_code_is_refused_and_wrong_files_are_named(tmp_path):
    evil = tmp_path / "evil.pth"
    torch.save({"pretrained.cls_token": _NotWeights()}, evil)
    with pytest.raises(MissingWeightsError, match="evil.pth"):
        load_depth_predictor("depth-anything-v2-tiny", weights=evil)
    other = _state_file(tmp_path, build_depth_model("video-depth-anything-tiny"), ".safetensors")
    with pytest.raises(
        BadArgumentsError, match=r"weights\.safetensors do not fit model depth-anything-v2-tiny.*unexpected"
    ):
        load_depth_predictor("depth-anything-v2-tiny", weights=other)
    with pytest.raises(MissingWeightsError, match="does not exist"):
        load_depth_predictor("depth-anything-v2-tiny", weights=tmp_path / "absent.pth")


def test_missing_official_weights_say_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv(MODELS_ENV, raising=False)
    with pytest.raises(MissingWeightsError) as info:
        load_depth_predictor("buffer-anytime-depth-small", models_dir=tmp_path / "models")
    message = str(info.value)
    assert "depth_anything_v2_vits.pth" in message and "depth-anything/Depth-Anything-V2-Small" in message
    assert str(tmp_path / "models") in message
    with pytest.raises(BadArgumentsError, match="random"):
        load_depth_predictor("depth-anything-v2-tiny")
    with pytest.raises(BadArgumentsError, match="unknown depth model"):
        load_depth_predictor("depth-anything-v9")


def test_official_file_in_models_folder_is_found(tmp_path, monkeypatch):
    # A vits-sized file under its official name, found through BUFFERANY_MODELS (real loading path);
    # its pinned size and hash unset, since this file only has the official one's keys and shapes.
    monkeypatch.setenv(MODELS_ENV, str(tmp_path))
    spec = get_spec("depth-anything-v2-small")
    monkeypatch.setitem(weights._REGISTRY, spec.name, dataclasses.replace(spec, size_bytes=None, sha256=None))
    with torch.device("meta"):
        shapes = {k: v.shape for k, v in build_depth_model("depth-anything-v2-small").state_dict().items()}
    state = {k: torch.full(s, 0.01) for k, s in shapes.items()}
    torch.save(state, tmp_path / "depth_anything_v2_vits.pth")
    predictor = load_depth_predictor("buffer-anytime-depth-small", processing_size=28)
    assert predictor.info.weights_sha256 == sha256_of(tmp_path / "depth_anything_v2_vits.pth")
    assert predictor.info.untrained  # no temporal weights yet
    assert predictor.predict(_plate(2)).shape == (2, 1, 30, 50)


@pytest.mark.parametrize("train_head", [False, True])
def test_temporal_weights_round_trip_beside_the_prior(tmp_path, train_head):
    config = BufferAnytimeConfig.for_size("tiny", train_head=train_head)
    model = build_depth_model("buffer-anytime-depth-tiny", config=config)
    model.load_prior_state_dict(deterministic_state_dict(model.prior, seed=1))
    with torch.no_grad():  # as if trained: temporal output projections and head away from their init
        for p in model.trainable_parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    path = tmp_path / "temporal" / "bat_tiny.safetensors"
    save_temporal_weights(path, model, prior_sha256="abc")

    saved = json.loads(path.with_suffix(".json").read_text())
    assert saved["config"]["prior_size"] == "tiny" and saved["config"]["train_head"] is train_head
    assert saved["provenance"] == {"prior_sha256": "abc", "temporal_sha256": sha256_of(path)}
    loaded = read_temporal_weights(path, family="depth")
    assert BufferAnytimeConfig.from_dict(loaded.config) == config
    assert not any(k.startswith("prior.") for k in loaded.state)  # never a copy of the prior's weights
    assert any(k.startswith("video_head.") for k in loaded.state) == train_head
    assert sorted(os.listdir(path.parent)) == [
        "bat_tiny.json",
        "bat_tiny.safetensors",
    ]  # no temporary files left

    prior_file = tmp_path / "prior.safetensors"
    save_file({k: v.contiguous() for k, v in model.prior.state_dict().items()}, str(prior_file))
    predictor = load_depth_predictor(
        "buffer-anytime-depth-tiny", weights=prior_file, temporal_weights=path, processing_size=SIZE
    )
    assert not predictor.info.untrained
    assert predictor.info.weights_sha256 == f"{sha256_of(prior_file)}+{sha256_of(path)}"
    plate = _plate(3)
    expected_input = torch.nn.functional.interpolate(plate, size=(42, 70), mode="bicubic")
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = model.eval()(((expected_input - mean) / std).unsqueeze(0))[0]
        prior_only = model.image_forward(((expected_input - mean) / std).unsqueeze(0))[0]
    expected = torch.nn.functional.interpolate(
        expected[:, None], size=(30, 50), mode="bilinear", align_corners=True
    )
    out = predictor.predict(plate)
    assert float((out - expected).abs().max()) < 1e-5
    assert (
        float(
            (
                out[:, 0]
                - torch.nn.functional.interpolate(
                    prior_only[:, None], size=(30, 50), mode="bilinear", align_corners=True
                )[:, 0]
            )
            .abs()
            .max()
        )
        > 1e-3
    )


def test_temporal_weights_need_their_config_and_the_right_prior(tmp_path):
    config = BufferAnytimeConfig.for_size("tiny")
    model = build_depth_model("buffer-anytime-depth-tiny", config=config)
    path = tmp_path / "t.safetensors"
    save_temporal_weights(path, model, prior_sha256=None)
    with pytest.raises(BadArgumentsError, match="prior size 'tiny'"):
        load_depth_predictor("buffer-anytime-depth-small", weights=RandomWeights(0), temporal_weights=path)
    with pytest.raises(BadArgumentsError, match="only buffer-anytime"):
        load_depth_predictor("depth-anything-v2-tiny", weights=RandomWeights(0), temporal_weights=path)
    saved = json.loads(path.with_suffix(".json").read_text())
    saved["config"]["insert_after"] = ["layer3"]
    path.with_suffix(".json").write_text(json.dumps(saved))
    with pytest.raises(BadArgumentsError, match="insert_after"):
        load_depth_predictor("buffer-anytime-depth-tiny", weights=RandomWeights(0), temporal_weights=path)
    path.with_suffix(".json").unlink()
    with pytest.raises(MissingWeightsError, match=r"t\.json"):
        read_temporal_weights(path, family="depth")


def test_precision_and_window_limits():
    with pytest.raises(BadArgumentsError, match="CUDA"):
        load_depth_predictor("depth-anything-v2-tiny", weights=RandomWeights(0), precision="fp16")
    vda = load_depth_predictor("video-depth-anything-tiny", weights=RandomWeights(0), processing_size=14)
    with pytest.raises(ValueError, match="at most 32 frames"):
        vda.predict(torch.rand(33, 3, 14, 14))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (runs on GPU machines)")
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_autocast_on_cuda_stays_close_to_fp32(precision):
    fp32 = load_depth_predictor(
        "buffer-anytime-depth-tiny", weights=RandomWeights(0), device="cuda", processing_size=SIZE
    )
    half = load_depth_predictor(
        "buffer-anytime-depth-tiny",
        weights=RandomWeights(0),
        device="cuda",
        processing_size=SIZE,
        precision=precision,
    )
    plate = _plate(4).cuda()
    a, b = fp32.predict(plate), half.predict(plate)
    assert b.dtype == torch.float32
    assert float((a - b).abs().max()) <= 0.05 * float(a.abs().max())
