"""Device choice and the predictor cache the server keeps for its lifetime."""

from __future__ import annotations

import pytest
import torch

from bufferany_core.devices import choose_device
from bufferany_core.errors import BadArgumentsError, MissingWeightsError
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.service.observed_cache import ObservedPredictorCache


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


def _tiny(cache: PredictorCache, seed: int):
    return cache.get("depth", "video-depth-anything-tiny", weights=f"random:{seed}", device="cpu", processing_size=28)


def test_least_recently_used_predictor_is_evicted_and_reloads_on_the_next_get():
    cache = PredictorCache(max_models=2)
    a, b = _tiny(cache, 0), _tiny(cache, 1)
    assert _tiny(cache, 0) is a  # a is now the most recently used, so b goes first
    c = _tiny(cache, 2)
    assert cache.loads == 3
    assert [key.weights for key, _ in cache.entries()] == ["random:0", "random:2"]
    assert _tiny(cache, 0) is a and _tiny(cache, 2) is c and cache.loads == 3
    reloaded = _tiny(cache, 1)
    assert reloaded is not b and cache.loads == 4
    assert [key.weights for key, _ in cache.entries()] == ["random:2", "random:1"]  # a was least recent
    same = zip(reloaded.model.state_dict().values(), b.model.state_dict().values(), strict=True)
    assert all(torch.equal(x, y) for x, y in same)  # the same weights, loaded again


def test_max_models_one_keeps_only_the_last_predictor():
    cache = PredictorCache(max_models=1)
    a = _tiny(cache, 0)
    _tiny(cache, 1)
    assert [key.weights for key, _ in cache.entries()] == ["random:1"]
    assert _tiny(cache, 0) is not a and cache.loads == 3 and len(cache.entries()) == 1


def test_max_models_below_one_is_refused():
    with pytest.raises(ValueError, match="max_models must be at least 1, got 0"):
        PredictorCache(max_models=0)


def test_server_status_describes_only_the_predictors_still_loaded():
    cache = ObservedPredictorCache(max_models=1)
    cache.get("depth", "video-depth-anything-tiny", weights="random", device="cpu", processing_size=28)
    cache.get("depth", "video-depth-anything-tiny", weights="random", device="cpu", processing_size=42)
    assert cache.describe() == [
        {
            "pass": "depth",
            "model": "video-depth-anything-tiny",
            "device": "cpu",
            "precision": "fp32",
            "untrained": True,
            "processing_size": 42,
        }
    ]
    assert cache.loads == 2
