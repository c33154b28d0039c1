"""`--downscale area`: frames bigger than a model's input are averaged straight down to it."""

from __future__ import annotations

import torch

from bufferany_core.jobs import RenderJob
from bufferany_core.models.depth.preprocess import official_sizes, resize_for_model, resize_officially
from bufferany_core.models.normal import load_normal_predictor
from bufferany_core.models.weights import RandomWeights
from bufferany_core.pipeline.predictor_cache import PredictorCache


def _stripes(height: int, width: int) -> torch.Tensor:
    """One-pixel stripes (the finest texture a plate holds), slightly tilted so a plain resize aliases."""
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return ((x + y // 7) % 2).float().expand(1, 3, height, width).contiguous()


def test_area_gives_the_same_input_shape_without_aliasing():
    frames = _stripes(432, 768)
    plain, area = resize_for_model(frames, 56), resize_for_model(frames, 56, "area")
    assert plain.shape == area.shape == (1, 3, 56, 98)
    # the stripes average to grey; a plain bicubic keeps (aliased) stripes of a lower frequency
    assert float(area.std()) < 0.05 < float(plain.std())
    big = _stripes(2160, 3840)
    _, shape = official_sizes(2160, 3840, 518)
    assert tuple(resize_officially(big, 518, "area").shape[-2:]) == shape == tuple(resize_officially(big, 518).shape[-2:])


def test_no_shrink_no_change():
    frames = torch.rand(2, 3, 20, 30)
    torch.testing.assert_close(resize_for_model(frames, 28, "area"), resize_for_model(frames, 28))


def test_normals_and_cache_keys_take_it():
    predictor = load_normal_predictor("marigold-e2e-ft-normals-tiny", weights=RandomWeights(0), processing_size=32, downscale="area")
    assert predictor.downscale == "area"
    assert predictor.predict(torch.rand(1, 3, 64, 96)).shape == (1, 3, 64, 96)
    cache = PredictorCache()
    kwargs = dict(weights="random", device="cpu", processing_size=28)
    assert cache.get("depth", "video-depth-anything-tiny", **kwargs) is not cache.get(
        "depth", "video-depth-anything-tiny", downscale="area", **kwargs
    )
    assert RenderJob(input="x.####.exr", downscale="area").pixel_settings()["downscale"] == "area"
    assert "downscale" not in RenderJob(input="x.####.exr").pixel_settings()
