"""Training data: clip discovery (EXR sequences and movies), deterministic sampling, disjoint ranks,
the flow cache (crop and flip of cached flows)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from bufferany_training.config import DataSection
from bufferany_training.data import ClipDataset, StepSampler, discover_clips, plan_sample
from bufferany_training.flow_cache import crop_flow
from training_clips import one_torch_thread, texture, write_moving_clip  # noqa: F401 (autouse fixture)

from bufferany_core.errors import InputNotFoundError


def _write_movie(path: Path, frames: int, size=(48, 64)) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 24, (size[1], size[0]))
    image = (texture(size[0], size[1] + 2 * frames, seed=7) * 255).astype(np.uint8)
    for k in range(frames):
        writer.write(np.ascontiguousarray(image[:, 2 * k : 2 * k + size[1]]))
    writer.release()


def test_discovers_sequences_and_movies(tmp_path):
    write_moving_clip(tmp_path / "shots" / "a", frames=3, size=(28, 42))
    write_moving_clip(tmp_path / "shots" / "b", frames=4, size=(28, 42), seed=2)
    _write_movie(tmp_path / "walk.mp4", frames=6)
    (tmp_path / "notes.txt").write_text("not a clip")
    clips = discover_clips(tmp_path)
    assert [len(c.frames) for c in clips] == [3, 4, 6]
    assert clips[2].sequence.movie is not None and (clips[2].height, clips[2].width) == (48, 64)
    data = DataSection(frames=4, size=(28, 42), workers=0)
    item = ClipDataset(clips, data, seed=0, with_flows=True)[5]
    t = item["frames"].shape[0]
    assert item["frames"].shape == (t, 3, 28, 42) and item["flows_fw"].shape == (t - 1, 2, 28, 42)
    assert 0.0 <= item["frames"].min() and item["frames"].max() <= 1.0
    with pytest.raises(InputNotFoundError, match="no clips"):
        discover_clips(_empty(tmp_path))


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def test_samples_are_a_function_of_seed_and_index_and_ranks_never_share(tmp_path):
    write_moving_clip(tmp_path / "a", frames=12, size=(42, 84))
    clips = discover_clips(tmp_path)
    data = DataSection(frames=5, size=(28, 42), strides=(1, 2))
    plans = [plan_sample(i, seed=3, clips=clips, data=data) for i in range(40)]
    assert plans == [plan_sample(i, seed=3, clips=clips, data=data) for i in range(40)]
    assert len({p.box for p in plans}) > 10 and {p.flip for p in plans} == {True, False}
    for p in plans:
        steps = np.diff(p.frames)
        assert len(p.frames) == 5 and len(set(steps)) == 1 and steps[0] in (1, 2)
        top, left, h, w = p.box
        assert top + h <= 42 and left + w <= 84 and abs(w / h - 42 / 28) < 0.1
    ranks = [list(StepSampler(start_step=0, total_steps=3, batch_size=2, rank=r, world_size=2)) for r in (0, 1)]
    assert not set(ranks[0]) & set(ranks[1]) and len(ranks[0]) == 6
    resumed = list(StepSampler(start_step=2, total_steps=3, batch_size=2, rank=1, world_size=2))
    assert resumed == ranks[1][4:]


def test_cached_flows_are_cropped_scaled_and_flipped(tmp_path):
    flow = torch.zeros(1, 2, 40, 60)
    flow[:, 0], flow[:, 1] = 3.0, -1.0  # a uniform translation
    out = crop_flow(flow, (10, 20, 20, 30), (40, 60), flip=True)  # 2x upscale, mirrored
    torch.testing.assert_close(out[:, 0], torch.full((1, 40, 60), -6.0))
    torch.testing.assert_close(out[:, 1], torch.full((1, 40, 60), -2.0))

    write_moving_clip(tmp_path / "clips" / "a", frames=4, size=(28, 42))
    clips = discover_clips(tmp_path / "clips")
    full_frame = DataSection(frames=4, size=(28, 42), scale=(1.0, 1.0), flip=False, strides=(1,))
    cached = ClipDataset(clips, DataSection(**{**full_frame.__dict__, "cache": str(tmp_path / "cache")}), seed=0, with_flows=True)
    direct = ClipDataset(clips, full_frame, seed=0, with_flows=True)
    first = cached[0]
    files = sorted((tmp_path / "cache").rglob("*.safetensors"))
    assert len(files) == 3
    stamps = [f.stat().st_mtime_ns for f in files]
    again = cached[0]
    assert [f.stat().st_mtime_ns for f in files] == stamps  # read back, not recomputed
    torch.testing.assert_close(again["flows_fw"], first["flows_fw"])
    torch.testing.assert_close(first["flows_fw"], direct[0]["flows_fw"])  # full frame: the same flows


def test_flow_cache_recomputes_for_a_re_rendered_clip(tmp_path):
    folder = write_moving_clip(tmp_path / "clips" / "a", frames=3, size=(28, 42))
    data = DataSection(frames=3, size=(28, 42), scale=(1.0, 1.0), flip=False, strides=(1,), cache=str(tmp_path / "cache"))
    before = ClipDataset(discover_clips(tmp_path / "clips"), data, seed=0, with_flows=True)[0]
    write_moving_clip(folder, frames=3, size=(28, 42), speed=5, seed=3)  # same names, new pixels
    clips = discover_clips(tmp_path / "clips")
    after = ClipDataset(clips, data, seed=0, with_flows=True)[0]
    direct = ClipDataset(clips, DataSection(**{**data.__dict__, "cache": ""}), seed=0, with_flows=True)[0]
    torch.testing.assert_close(after["flows_fw"], direct["flows_fw"])  # the new frames' flow, not the cached one
    assert not torch.allclose(after["flows_fw"], before["flows_fw"])
    linear = ClipDataset(clips, DataSection(**{**data.__dict__, "colorspace": "ACEScg"}), seed=0, with_flows=True)[0]
    assert linear["flows_fw"].shape == after["flows_fw"].shape
    assert len(list((tmp_path / "cache").rglob("*.safetensors"))) == 2 * 3  # 2 pairs for each of 3 sources: before, after, another colour space
