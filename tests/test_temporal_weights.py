"""One temporal-weights API and file format for both families: the same calls save and load depth
and normal video models, the JSON carries format_version, family, config and both hashes, files of
the first format (version 1) still load, and mismatched pairs or families are refused."""

from __future__ import annotations

import json

import pytest
import torch

from bufferany_core.errors import BadArgumentsError
from bufferany_core.models.depth import BufferAnytimeConfig, build_depth_model
from bufferany_core.models.normal.build import random_image_model, video_model
from bufferany_core.models.normal.configs import TEMPORAL_CONFIGS
from bufferany_core.models.temporal_weights import (
    FORMAT_VERSION,
    load_temporal_weights,
    read_temporal_weights,
    save_temporal_weights,
)
from bufferany_core.models.weights import sha256_of


def _depth():
    return build_depth_model("buffer-anytime-depth-tiny", config=BufferAnytimeConfig.for_size("tiny"))


def _normal():
    return video_model(random_image_model("tiny", seed=0), TEMPORAL_CONFIGS["tiny"], seed=0)


def _perturb(model) -> None:
    """As training leaves it: every temporal tensor away from its initialisation."""
    with torch.no_grad():
        for value in model.temporal_state_dict().values():
            if value.is_floating_point():
                value.add_(0.05 * torch.randn(value.shape, generator=torch.Generator().manual_seed(value.numel())))


@pytest.mark.parametrize(("family", "build"), [("depth", _depth), ("normal", _normal)])
def test_round_trip_with_the_same_api_for_both_families(tmp_path, family, build):
    model = build()
    _perturb(model)
    path = tmp_path / "run" / "temporal.safetensors"
    saved = save_temporal_weights(path, model, prior_sha256="ab" * 32, provenance={"trained_steps": 7})

    document = json.loads(path.with_suffix(".json").read_text())
    assert document["format"] == "bufferany/temporal-weights"
    assert document["format_version"] == FORMAT_VERSION and document["family"] == family
    assert document["config"] == json.loads(json.dumps(model.temporal_config()))
    assert document["provenance"] == {
        "trained_steps": 7,
        "prior_sha256": "ab" * 32,
        "temporal_sha256": sha256_of(path),
    }
    assert saved.temporal_sha256 == sha256_of(path) and saved.prior_sha256 == "ab" * 32

    fresh = build()
    loaded = load_temporal_weights(path, fresh)
    assert loaded.format_version == FORMAT_VERSION and loaded.provenance["trained_steps"] == 7
    for key, value in model.temporal_state_dict().items():
        assert torch.equal(fresh.temporal_state_dict()[key], value), key


def test_the_other_familys_file_and_a_pair_not_written_together_are_refused(tmp_path):
    depth, normal = _depth(), _normal()
    depth_path, normal_path = tmp_path / "d.safetensors", tmp_path / "n.safetensors"
    save_temporal_weights(depth_path, depth, prior_sha256=None)
    save_temporal_weights(normal_path, normal, prior_sha256=None)
    with pytest.raises(BadArgumentsError, match="are depth weights, not normal"):
        load_temporal_weights(depth_path, normal)
    # The normal tensors beside the depth JSON: the recorded hash names the mismatch.
    normal_path.replace(depth_path)
    with pytest.raises(BadArgumentsError, match="not written together"):
        read_temporal_weights(depth_path, family="depth")


def test_unknown_formats_and_versions_are_refused(tmp_path):
    path = tmp_path / "t.safetensors"
    save_temporal_weights(path, _depth(), prior_sha256=None)
    document = json.loads(path.with_suffix(".json").read_text())
    path.with_suffix(".json").write_text(json.dumps({**document, "format_version": 99}))
    with pytest.raises(BadArgumentsError, match="format_version 99"):
        read_temporal_weights(path, family="depth")
    path.with_suffix(".json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BadArgumentsError, match="not a bufferany temporal weights config"):
        read_temporal_weights(path, family="depth")


@pytest.mark.parametrize("family", ["depth", "normal"])
def test_version_1_files_still_load(tmp_path, family):
    """The first build wrote one format per family, config fields at the top level, no format_version."""
    model = _depth() if family == "depth" else _normal()
    _perturb(model)
    path = tmp_path / "old.safetensors"
    save_temporal_weights(path, model, prior_sha256=None)
    config = model.temporal_config()
    old = (
        {"format": "bufferany/buffer-anytime-depth", "prior_sha256": "cd" * 32, **config}
        if family == "depth"
        else {"format": "bufferany-normal-temporal", "version": 1, "trained_steps": 3, **config}
    )
    path.with_suffix(".json").write_text(json.dumps(old))

    fresh = _depth() if family == "depth" else _normal()
    loaded = load_temporal_weights(path, fresh)
    assert loaded.format_version == 1 and loaded.temporal_sha256 == sha256_of(path)
    assert loaded.prior_sha256 == ("cd" * 32 if family == "depth" else None)
    for key, value in model.temporal_state_dict().items():
        assert torch.equal(fresh.temporal_state_dict()[key], value), key
