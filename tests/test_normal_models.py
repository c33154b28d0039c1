"""Marigold-E2E-FT normals and the Buffer Anytime video model, with tiny deterministic random weights."""

from __future__ import annotations

import json

import pytest
import torch

from bufferany_core.errors import BadArgumentsError, MissingWeightsError
from bufferany_core.models.normal import (
    MODEL_AXES,
    BufferAnytimeNormals,
    NormalPredictor,
    load_normal_predictor,
)
from bufferany_core.models.normal.build import random_image_model, video_model
from bufferany_core.models.normal.configs import TEMPORAL_CONFIGS
from bufferany_core.models.temporal_weights import load_temporal_weights, save_temporal_weights
from bufferany_core.models.weights import RandomWeights
from bufferany_core.normal_space import convert_axes

IMAGE, VIDEO = "marigold-e2e-ft-normals-tiny", "buffer-anytime-normal-tiny"


def frames(t: int, h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(t, 3, h, w, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def video():
    return load_normal_predictor(VIDEO, weights=RandomWeights(1), processing_size=32)


@pytest.fixture(scope="module")
def image():
    return load_normal_predictor(IMAGE, weights=RandomWeights(1), processing_size=32)


@pytest.mark.parametrize("shape", [(3, 25, 35), (1, 32, 32), (5, 33, 17)])
def test_output_shape_and_unit_length(video, image, shape):
    x = frames(*shape)
    for predictor in (video, image):
        out = predictor.predict(x)
        assert out.shape == x.shape and out.dtype == torch.float32
        assert torch.isfinite(out).all()
        torch.testing.assert_close(out.norm(dim=1), torch.ones(shape[0], *shape[1:]), atol=1e-5, rtol=0)


def test_info_marks_random_and_zero_initialised_models_untrained(video, image):
    assert video.info.untrained and image.info.untrained
    assert video.info.weights_sha256 is None and video.info.pass_name == "normal"
    assert video.info.model_id == VIDEO and video.info.default_window == 32
    assert image.info.default_overlap == 0 and video.max_frames == 32


def test_random_weights_are_deterministic(video):
    x = frames(2, 24, 32)
    again = load_normal_predictor(VIDEO, weights=RandomWeights(1), processing_size=32)
    other = load_normal_predictor(VIDEO, weights=RandomWeights(2), processing_size=32)
    assert torch.equal(video.predict(x), again.predict(x))
    assert (video.predict(x) - other.predict(x)).abs().max() > 0.1


def test_video_model_equals_image_model_on_every_frame_at_init():
    # float64 so that batch-size-dependent float32 kernels do not hide or fake a difference
    image_model = random_image_model("tiny", seed=3).double()
    model = video_model(random_image_model("tiny", seed=3), TEMPORAL_CONFIGS["tiny"], seed=3).double()
    x = frames(5, 32, 40).double() * 2 - 1
    with torch.no_grad():
        per_frame = torch.cat([image_model(f[None]) for f in x])  # (5, 3, 32, 40), one frame at a time
        window = model(x[None])[0]
    assert (window - per_frame).abs().max() < 1e-5
    assert per_frame.abs().max() > 0.1  # a real prediction, not zeros


def test_video_predictor_equals_its_prior_exactly_when_batched_alike(video, image):
    # the video model's own UNet without its temporal blocks, batched like the window (4 frames = 1 chunk)
    prior = NormalPredictor(
        video.image_model, info=image.info, device=video.device, processing_size=32, decode_chunk=4
    )
    x = frames(4, 24, 32)
    assert torch.equal(video.predict(x), prior.predict(x))


def test_temporal_blocks_act_once_trained_and_leave_the_prior_alone():
    model = video_model(random_image_model("tiny", seed=0), TEMPORAL_CONFIGS["tiny"], seed=0)
    latents = torch.randn(1, 3, 4, 6, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        prior = model.image_latents(latents[0])
        for block in model.temporal.blocks.values():
            torch.nn.init.normal_(block.proj_out.weight, std=0.05)
        trained = model.predict_latent(latents)[0]
        assert (trained - prior).abs().max() > 1e-3
        # frame 0 of a window now depends on the other frames
        changed = latents.clone()
        changed[0, 2] += 1.0
        assert (model.predict_latent(changed)[0, 0] - trained[0]).abs().max() > 1e-4
        assert torch.equal(model.image_latents(latents[0]), prior)


def test_output_is_model_output_in_project_axes(image):
    x = frames(2, 32, 32)
    predictor = load_normal_predictor(IMAGE, weights=RandomWeights(1), processing_size=0)
    with torch.no_grad():
        native = predictor.image_model(x * 2 - 1)  # model's own axes, already 64x64 (no resize, no pad)
    expected = convert_axes(native, MODEL_AXES)
    torch.testing.assert_close(predictor.predict(x), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(expected[:, 0], -native[:, 0])


def test_chunked_decode_equals_full_decode():
    model = random_image_model("tiny", seed=0).double()  # float64: exact up to rounding
    latents = torch.randn(7, 4, 6, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        full = model.decode(latents)
        for chunk in (1, 3, 4):
            torch.testing.assert_close(model.decode(latents, chunk=chunk), full, atol=1e-10, rtol=0)
    assert full.shape == (7, 3, 48, 40)


def test_predictor_decode_chunk_does_not_change_video_output(video):
    x = frames(6, 24, 32)
    chunked = load_normal_predictor(VIDEO, weights=RandomWeights(1), processing_size=32, decode_chunk=2)
    # float32 kernels differ slightly with the batch size: agreement to 1e-4 of a unit vector
    torch.testing.assert_close(chunked.predict(x), video.predict(x), atol=1e-4, rtol=0)


def test_temporal_weights_round_trip(tmp_path):
    model = video_model(random_image_model("tiny", seed=0), TEMPORAL_CONFIGS["tiny"], seed=0)
    for block in model.temporal.blocks.values():
        torch.nn.init.normal_(block.proj_out.weight, std=0.05, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "normal_temporal.safetensors"
    save_temporal_weights(path, model, prior_sha256=None, provenance={"trained_steps": 7})
    saved = json.loads(path.with_suffix(".json").read_text())
    assert path.is_file() and saved["provenance"]["trained_steps"] == 7

    fresh = video_model(random_image_model("tiny", seed=0), TEMPORAL_CONFIGS["tiny"], seed=5)
    load_temporal_weights(path, fresh)
    for key, value in model.temporal.state_dict().items():
        assert torch.equal(fresh.temporal.state_dict()[key], value), key

    x = frames(3, 24, 32)
    loaded = load_normal_predictor(VIDEO, weights=RandomWeights(0), processing_size=32, temporal_weights=path)
    reference = load_normal_predictor(VIDEO, weights=RandomWeights(0), processing_size=32)
    assert (loaded.predict(x) - reference.predict(x)).abs().max() > 1e-4  # the trained blocks are used


def test_temporal_weights_of_another_architecture_are_refused(tmp_path):
    model = video_model(random_image_model("tiny", seed=0), TEMPORAL_CONFIGS["tiny"], seed=0)
    path = tmp_path / "t.safetensors"
    save_temporal_weights(path, model, prior_sha256=None)
    other = video_model(random_image_model("tiny", seed=0), TEMPORAL_CONFIGS["sd2"], seed=0)
    with pytest.raises(BadArgumentsError, match="other temporal blocks"):
        load_temporal_weights(path, other)
    path.with_suffix(".json").unlink()
    with pytest.raises(MissingWeightsError, match="config"):
        load_temporal_weights(path, model)


def test_training_interface_freezes_the_prior():
    model = video_model(random_image_model("tiny", seed=0), TEMPORAL_CONFIGS["tiny"], seed=0)
    assert isinstance(model, BufferAnytimeNormals)
    trainable = {id(p) for p in model.trainable_parameters()}
    assert trainable == {id(p) for p in model.parameters() if p.requires_grad}
    assert not any(p.requires_grad for p in model.image_model.parameters())

    images = frames(4, 32, 32) * 2 - 1
    latents = model.encode(images).unflatten(0, (1, 4))  # (1, 4 frames, 4, 4, 4)
    predicted = model.predict_latent(latents)
    target = model.image_latents(latents[0, 1:2])  # L_reg on one frame
    loss = (predicted[0, 1:2] - target).pow(2).mean() + model.decode(predicted[0, :2]).abs().mean()
    loss.backward()
    grads = [p.grad for p in model.trainable_parameters()]
    assert all(g is not None for g in grads) and any(g.abs().sum() > 0 for g in grads)


def test_bad_requests_are_refused(video, image, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="at most 32 frames"):
        video.predict(frames(33, 16, 16))
    with pytest.raises(ValueError, match=r"\(T,3,H,W\)"):
        image.predict(torch.rand(3, 16, 16))
    with pytest.raises(BadArgumentsError, match="unknown normal model"):
        load_normal_predictor("marigold")
    with pytest.raises(BadArgumentsError, match="random weights only"):
        load_normal_predictor(IMAGE, weights=tmp_path)
    with pytest.raises(BadArgumentsError, match="image model"):
        load_normal_predictor(IMAGE, temporal_weights=tmp_path / "t.safetensors")
    with pytest.raises(BadArgumentsError, match="processing size"):
        load_normal_predictor(IMAGE, processing_size=-1)


def test_missing_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("BUFFERANY_MODELS", raising=False)
    with pytest.raises(MissingWeightsError, match="GonzaloMG/marigold-e2e-ft-normals") as info:
        load_normal_predictor("buffer-anytime-normal", models_dir=tmp_path)
    assert str(tmp_path) in str(info.value)
