"""The official inference's sizes for the depth model: the 1280 long-side cap and the lower input size
for plates wider than 16:9, by default; an explicit processing size is used as given."""

from __future__ import annotations

import pytest
import torch

from bufferany_core.models.depth import load_depth_predictor
from bufferany_core.models.depth.preprocess import (
    capped_shape,
    official_sizes,
    processing_shape,
    resize_officially,
    wide_input_size,
)
from bufferany_core.models.weights import RandomWeights
from bufferany_core.pipeline.predictor_cache import PredictorCache


@pytest.mark.parametrize(
    ("plate", "capped", "shape"),
    [
        ((858, 2048), (536, 1280), (392, 938)),  # scope: 938x392 as infer_video_depth runs it, not 1232x518
        ((1080, 1920), (720, 1280), (518, 924)),  # 16:9: the size stays 518
        ((2160, 4096), (675, 1280), (490, 924)),  # DCI 4K: capped, then 1.9:1 lowers the size
        ((2160, 3840), (720, 1280), (518, 924)),  # UHD: capped only
        ((1920, 1080), (1280, 720), (924, 518)),  # portrait
        ((112, 200), (112, 200), (112, 196)),  # small plates are never enlarged by the cap
        ((4000, 30), (1280, 10), (1792, 14)),  # absurd ratios still get at least one patch
    ],
)
def test_official_shapes(plate, capped, shape):
    assert official_sizes(*plate, 518 if plate != (112, 200) else 112) == (capped, shape)


def test_the_rules_one_by_one():
    assert capped_shape(720, 1280) == (720, 1280) and capped_shape(1000, 2000) == (640, 1280)
    assert wide_input_size(858, 2048, 518) == 392 and wide_input_size(1080, 1920, 518) == 518
    assert processing_shape(858, 2048, 518) == (518, 1232)  # what an explicit 518 gets


def test_resize_officially_caps_then_resizes():
    frames = torch.rand(1, 3, 858, 2048)
    assert tuple(resize_officially(frames, 518).shape) == (1, 3, 392, 938)
    out = resize_officially(torch.rand(1, 3, 2160, 4096), 518)
    assert tuple(out.shape) == (1, 3, 490, 924)


def test_default_size_brings_the_official_rules_an_explicit_one_does_not():
    default = load_depth_predictor("video-depth-anything-tiny", weights=RandomWeights(0))
    explicit = load_depth_predictor("video-depth-anything-tiny", weights=RandomWeights(0), processing_size=56)
    assert default.official_sizes and default.processing_size == 518
    assert not explicit.official_sizes
    seen = []
    for predictor in (default, explicit):
        handle = predictor.model.register_forward_pre_hook(lambda m, args: seen.append(tuple(args[0].shape[-2:])))
        predictor.predict(torch.rand(1, 3, 43, 103))  # 2.4:1, small: the wide rule lowers 518 to 378
        handle.remove()
    assert seen == [(378, 910), processing_shape(43, 103, 56)]  # an explicit size: no wide rule
    cache = PredictorCache()
    a = cache.get("depth", "video-depth-anything-tiny", weights="random", device="cpu")
    b = cache.get("depth", "video-depth-anything-tiny", weights="random", device="cpu", processing_size=518)
    assert a is not b and a.official_sizes and not b.official_sizes
