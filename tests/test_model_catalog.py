"""The model catalogue: both families' entries have the same shape, every entry builds (on "meta",
nothing allocated) into a module that agrees with its schedule, and the lookup the pipeline uses."""

from __future__ import annotations

import pytest
import torch

from bufferany_core.errors import BadArgumentsError
from bufferany_core.models.catalog import (
    DEFAULT_MODELS,
    DEPTH_MODELS,
    NORMAL_MODELS,
    ModelSchedule,
    get_model_entry,
)
from bufferany_core.models.depth import SIZES, build_depth_model
from bufferany_core.models.normal import build_normal_model
from bufferany_core.models.normal.configs import UNET_CONFIGS
from bufferany_core.models.weights import get_spec

ENTRIES = [*DEPTH_MODELS.values(), *NORMAL_MODELS.values()]
BUILDERS = {"depth": build_depth_model, "normal": build_normal_model}
SIZE_TABLES = {"depth": SIZES, "normal": UNET_CONFIGS}


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_entry_describes_its_model(entry):
    assert entry is get_model_entry(entry.family, entry.name)
    assert entry.size in SIZE_TABLES[entry.family]
    assert isinstance(entry.schedule, ModelSchedule) and entry.processing_size > 0
    assert (entry.schedule.max_frames is not None) == entry.video
    if entry.weights is None:  # tiny test models: random weights only
        assert entry.name.endswith("-tiny") and entry.licence is None
    else:
        assert all(get_spec(name).repo_id for name in entry.weights) and entry.licence
    # Only Video Depth Anything's official weights bring trained temporal layers.
    assert entry.trained_temporal == (entry.architecture == "video-depth-anything")


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_every_entry_builds_on_meta_as_its_schedule_says(entry):
    with torch.device("meta"):
        model = BUILDERS[entry.family](entry.name)
    assert all(p.is_meta for p in model.parameters())
    assert getattr(model, "max_frames", None) == entry.schedule.max_frames
    assert callable(model.normalize)


def test_lookup_defaults_and_unknown_names():
    assert get_model_entry("depth", None).name == DEFAULT_MODELS["depth"] == "video-depth-anything-small"
    assert get_model_entry("normal", None).name == DEFAULT_MODELS["normal"] == "buffer-anytime-normal"
    with pytest.raises(BadArgumentsError, match="unknown depth model 'nope'; known: depth-anything-v2-small"):
        get_model_entry("depth", "nope")
    with pytest.raises(BadArgumentsError, match="unknown normal model 'video-depth-anything-small'"):
        get_model_entry("normal", "video-depth-anything-small")
    with pytest.raises(BadArgumentsError, match="unknown pass 'albedo'"):
        get_model_entry("albedo", None)


def test_processing_size_means_what_each_family_says():
    # depth: the short side's bound (Depth Anything's 518); normals: the long edge (Marigold's 768)
    assert {e.processing_size for e in DEPTH_MODELS.values()} == {518}
    assert {e.processing_size for e in NORMAL_MODELS.values()} == {768}


def test_normalisation_is_the_models_own():
    rgb = torch.rand(2, 3, 4, 5)
    depth = build_depth_model("depth-anything-v2-tiny").normalize(rgb)
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(depth, (rgb - mean.view(3, 1, 1)) / std.view(3, 1, 1), rtol=0, atol=0)
    assert torch.equal(build_normal_model("buffer-anytime-normal-tiny").normalize(rgb), rgb * 2 - 1)


def test_schedules_are_checked():
    with pytest.raises(ValueError, match="overlap < window"):
        ModelSchedule(window=4, overlap=4, max_frames=None)
    with pytest.raises(ValueError, match="exceeds max_frames"):
        ModelSchedule(window=64, overlap=8, max_frames=32)
