"""Loading Marigold normals from a diffusers folder written here with save_pretrained (tiny UNet, VAE,
CLIP text encoder and a hand-written tokenizer vocabulary), and the cached empty-prompt embedding."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from diffusers import DDIMScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from bufferany_core.errors import MissingWeightsError
from bufferany_core.models.normal import load_normal_predictor
from bufferany_core.models.normal.build import random_image_model
from bufferany_core.models.normal.configs import DEFAULT_SCHEDULER
from bufferany_core.models.normal.marigold import clean_latent_coefficient
from bufferany_core.models.normal.text_embedding import CACHE_NAME, cache_paths

START, END = "<|startoftext|>", "<|endoftext|>"


def write_folder(root: Path, *, seed: int = 0) -> CLIPTextModel:
    """A Marigold-style diffusers folder; returns its text encoder."""
    prior = random_image_model("tiny", seed=seed)
    prior.unet.save_pretrained(root / "unet")
    prior.vae.save_pretrained(root / "vae")
    # as the E2E-FT checkpoints: SD2 schedule, v-prediction, trailing timesteps
    DDIMScheduler(**DEFAULT_SCHEDULER, timestep_spacing="trailing").save_pretrained(root / "scheduler")
    vocab, merges = root / "vocab.json", root / "merges.txt"
    vocab.write_text(json.dumps({START: 0, END: 1, "!": 2, "a</w>": 3}))
    merges.write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(
        vocab_file=str(vocab), merges_file=str(merges), model_max_length=77,
        bos_token=START, eos_token=END, unk_token=END, pad_token="!",
    )  # fmt: skip
    tokenizer.save_pretrained(root / "tokenizer")
    torch.manual_seed(seed)
    encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=4, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=2,
        )
    ).eval()  # fmt: skip
    encoder.save_pretrained(root / "text_encoder")
    vocab.unlink()
    merges.unlink()
    return encoder


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    root = tmp_path / "marigold-e2e-ft-normals"
    encoder = write_folder(root)
    return root, encoder


def test_folder_loads_and_caches_the_empty_prompt_embedding(folder):
    root, encoder = folder
    x = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    first = load_normal_predictor("marigold-e2e-ft-normals", weights=root, processing_size=32)
    assert not first.info.untrained and len(first.info.weights_sha256) == 64
    with torch.no_grad():
        expected = encoder(torch.tensor([[0, 1]]))[0]  # start and end tokens, unpadded
    torch.testing.assert_close(first.image_model.text_embedding, expected)
    assert (root / CACHE_NAME).is_file()
    out = first.predict(x)
    assert out.shape == x.shape
    torch.testing.assert_close(out.norm(dim=1), torch.ones(2, 24, 40), atol=1e-5, rtol=0)

    # a later run needs neither the text encoder nor its tokenizer
    shutil.rmtree(root / "text_encoder")
    shutil.rmtree(root / "tokenizer")
    second = load_normal_predictor("marigold-e2e-ft-normals", weights=root, processing_size=32)
    assert torch.equal(second.predict(x), out)
    assert second.info.weights_sha256 == first.info.weights_sha256  # the cache file is not hashed


def test_folder_weights_are_the_saved_weights(folder):
    root, _ = folder
    predictor = load_normal_predictor("marigold-e2e-ft-normals", weights=root, processing_size=32)
    reference = random_image_model("tiny", seed=0)
    for key, value in reference.unet.state_dict().items():
        assert torch.equal(predictor.image_model.unet.state_dict()[key], value), key
    # SD2 schedule without zero-SNR rescaling: alpha_bar(999) > 0, so the factor is just above -1
    assert predictor.image_model.timestep == 999
    assert -1.0 < predictor.image_model.latent_coefficient < -0.99


def test_video_model_on_folder_weights_is_untrained_without_temporal_weights(folder):
    root, _ = folder
    predictor = load_normal_predictor("buffer-anytime-normal", weights=root, processing_size=32)
    assert predictor.info.untrained and predictor.info.weights_sha256 is not None


def test_read_only_weights_folder_falls_back_to_the_user_cache(folder):
    root, _ = folder
    (root / CACHE_NAME).mkdir()  # the cache file cannot be written there (even as root)
    load_normal_predictor("marigold-e2e-ft-normals", weights=root, processing_size=32)
    assert cache_paths(root)[1].is_file()


def test_missing_text_encoder_without_cache_is_a_clear_error(folder):
    root, _ = folder
    shutil.rmtree(root / "text_encoder")
    with pytest.raises(MissingWeightsError, match="text_encoder"):
        load_normal_predictor("marigold-e2e-ft-normals", weights=root)


def test_incomplete_folder_is_a_clear_error(folder):
    root, _ = folder
    shutil.rmtree(root / "vae")
    with pytest.raises(MissingWeightsError, match="not a complete diffusers folder"):
        load_normal_predictor("marigold-e2e-ft-normals", weights=root)


@pytest.mark.parametrize(
    ("alpha", "prediction_type", "expected"),
    [
        (0.0, "v_prediction", -1.0),
        (0.36, "v_prediction", -0.8),
        (0.25, "epsilon", -math.sqrt(3.0)),
        (0.3, "sample", 1.0),
    ],
)
def test_clean_latent_coefficient(alpha, prediction_type, expected):
    assert clean_latent_coefficient(alpha_cumprod=alpha, prediction_type=prediction_type) == pytest.approx(
        expected
    )
