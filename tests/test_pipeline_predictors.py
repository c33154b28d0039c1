"""Device choice and the predictor cache the server keeps for its lifetime."""

from __future__ import annotations

import pytest
import torch

from bufferany_core.devices import choose_device
from bufferany_core.errors import BadArgumentsError, MissingWeightsError
from bufferany_core.pipeline.predictors import PredictorCache


def test_auto_device_is_cuda_only_when_present():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert choose_device("auto").type == expected
    assert choose_device("cpu") == torch.device("cpu")


@pytest.mark.parametrize("name", ["tpu", "cuda:x", "gpu"])
def test_unknown_devices_are_bad_arguments(name):
    with pytest.raises(BadArgumentsError, match="--device"):
        choose_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on machines without CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(BadArgumentsError, match="no CUDA device"):
        choose_device("cuda")


def test_cache_loads_each_configuration_once():
    cache = PredictorCache()
    a = cache.get("depth", "video-depth-anything-tiny", weights="random", device="cpu", processing_size=28)
    assert cache.get("depth", "video-depth-anything-tiny", weights="random:0", device="cpu", processing_size=28) is a
    b = cache.get("depth", "video-depth-anything-tiny", weights="random:1", device="cpu", processing_size=28)
    assert b is not a and b.info.untrained
    assert cache.get("depth", "video-depth-anything-tiny", weights="random", device="cpu", processing_size=42) is not a


def test_missing_weights_name_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError, match="video_depth_anything_vits.pth"):
        PredictorCache().get("depth", "video-depth-anything-small", models_dir=str(tmp_path), device="cpu")
