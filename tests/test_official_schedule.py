"""`--schedule official`: Video Depth Anything's own `infer_video_depth`, exactly (windows, key slots,
padding, alignment, clamp, cross-fade), checked on its own and against the official golden output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest
from pipeline_plates import write_plate

from bufferany_core import conventions
from bufferany_core.errors import BadArgumentsError
from bufferany_core.frames import read_channels
from bufferany_core.jobs import RenderJob
from bufferany_core.pipeline import official_schedule as official
from bufferany_core.pipeline.cli import main
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.render import plan_render, run_render

GOLDEN = Path(__file__).resolve().parents[2] / "shared" / "reference" / "vda_shot_golden.npz"
TINY = dict(depth_model="video-depth-anything-tiny", weights="random", device="cpu", passes=("depth",),
            depth_processing_size=28, schedule="official")


def test_windows_advance_by_22_with_the_previous_windows_key_slots():
    assert official.window_count(64) == 3 and official.window_count(1) == 1 and official.window_count(22) == 1
    assert official.window_positions(0, 64) == tuple(range(32))
    # slot 0: the shot's first frame; slot 1: the previous window's slot 12; then 30 contiguous frames
    assert official.window_positions(1, 64) == (0, 12, *range(24, 54))
    assert official.window_positions(2, 64) == (0, 34, *range(46, 63), *[63] * 13)  # padded with the last frame
    assert official.window_positions(0, 2) == (0, 1, *[1] * 30)
    assert official.window_positions(0, 1) == (0,) * 32


def _fake_predictions(length: int, seed: int = 0):
    """A 'model' whose window k predicts frame p's true map times a_k plus b_k: the official alignment
    recovers the first window's scale exactly, whatever the other windows' scales."""
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0.5, 2.0, size=(length, 4, 5))
    calls = []

    def predict(positions):
        k = len(calls)
        calls.append(tuple(positions))
        a, b = 1.0 + 0.3 * k, 0.2 * k
        return np.stack([a * truth[p] + b for p in positions])

    return truth, predict, calls


@pytest.mark.parametrize("length", [1, 2, 21, 22, 23, 32, 45, 64, 100])
def test_alignment_puts_every_window_on_the_first_windows_scale(length):
    truth, predict, calls = _fake_predictions(length)
    out = list(official.official_depth(length, predict))
    assert [p for p, _ in out] == list(range(length))
    # the windows the official code runs, but none whose frames are all padding or already final
    needed = official.final_after(length - 1, length) + 1
    assert needed >= official.window_count(length) - 1
    assert calls == [official.window_positions(k, length) for k in range(needed)]
    np.testing.assert_allclose(np.stack([d for _, d in out]), truth, rtol=1e-9, atol=1e-9)
    # a frame is final once the window official.final_after names has run
    for p in range(length):
        assert official.final_after(p, length) < official.window_count(length)


def test_stream_stops_at_the_last_frame_asked_for_and_clamps_at_zero():
    truth, predict, calls = _fake_predictions(100)
    out = list(official.official_depth(100, predict, until=30))
    assert [p for p, _ in out] == list(range(31)) and len(calls) == 2  # frame 30 is final after window 1
    alignment = official.OfficialAlignment(100)
    alignment.add(np.ones((32, 2, 2)))
    second = np.ones((32, 2, 2))
    second[:2] = 2.0  # flat slots 0-1 against a reference of ones: scale 1, shift -1
    second[20] = -50.0  # slot 20 = position 42: -51 after alignment
    final = dict(alignment.add(second))
    assert float(final[42].min()) == 0.0 and min(float(d.min()) for d in final.values()) == 0.0


def test_crossfade_is_linear_over_the_8_frames_before_the_new_ones():
    alignment = official.OfficialAlignment(60)
    done = dict(alignment.add(np.zeros((32, 1, 1))))
    assert sorted(done) == list(range(24))
    second = np.full((32, 1, 1), 7.0)
    second[:2] = 0.0  # slots 0-1 match the reference exactly: scale 1, shift 0 (flat: shift only)
    done = dict(alignment.add(second))
    assert sorted(done) == list(range(24, 46))
    fade = [float(done[p][0, 0]) for p in range(24, 32)]
    np.testing.assert_allclose(fade, [7.0 * i / 7 for i in range(8)])


def test_refuses_what_it_cannot_honour(tmp_path):
    pattern = write_plate(tmp_path / "p", range(1, 4))
    with pytest.raises(BadArgumentsError, match="not a Video Depth Anything model"):
        plan_render(RenderJob(input=pattern, **{**TINY, "depth_model": "depth-anything-v2-tiny"}))
    # normals only: official is Marigold-E2E-FT's own preprocessing (tests/test_normal_golden.py), a setting of its own
    normals = {**TINY, "passes": ("normal",), "normal_model": "marigold-e2e-ft-normals-tiny"}
    official_normals = plan_render(RenderJob(input=pattern, **normals))
    assert official_normals.settings != plan_render(RenderJob(input=pattern, **{**normals, "schedule": "farm"})).settings
    with pytest.raises(BadArgumentsError, match="leave out --window, --overlap"):
        plan_render(RenderJob(input=pattern, window=8, overlap=2, **TINY))
    farm = plan_render(RenderJob(input=pattern, **{**TINY, "schedule": "farm"}))
    assert plan_render(RenderJob(input=pattern, **TINY)).settings != farm.settings


@pytest.fixture(scope="module")
def predictors():
    return PredictorCache()


@pytest.mark.slow
def test_a_chunk_writes_what_one_run_writes_and_says_it_starts_from_the_first_frame(tmp_path, predictors):
    pattern = write_plate(tmp_path / "p", range(1, 51))
    whole = str(tmp_path / "whole" / "o.####.exr")
    run_render(RenderJob(input=pattern, output=whole, **TINY), predictors=predictors)
    chunk = str(tmp_path / "chunk" / "o.####.exr")
    events = []
    result = run_render(RenderJob(input=pattern, output=chunk, frames="40-50", shot_range="1-50", **TINY),
                        on_event=events.append, predictors=predictors)
    assert result.frames_written == list(range(40, 51))
    assert any(e["type"] == "log" and "sequential" in e["message"] for e in events)
    for n in range(40, 51):
        a, b = (read_channels(p.replace("####", f"{n:04d}"), [conventions.DEPTH_CHANNEL]) for p in (whole, chunk))
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("schedule", ["official", "farm"])
@pytest.mark.parametrize("frames", [1, 2])
def test_one_and_two_frame_shots(tmp_path, predictors, frames, schedule):
    pattern = write_plate(tmp_path / "p", range(1, frames + 1))
    result = run_render(RenderJob(input=pattern, **{**TINY, "schedule": schedule}), predictors=predictors)
    assert result.frames_written == list(range(1, frames + 1))
    depth = read_channels(str(tmp_path / "p" / "shot_buffers.0001.exr"), [conventions.DEPTH_CHANNEL])
    assert np.isfinite(depth).all()


def _write_png_sequence(folder: Path, frames: np.ndarray) -> str:
    folder.mkdir(parents=True)
    for i, rgb in enumerate(frames, start=1):
        out = oiio.ImageOutput.create("png")
        assert out.open(str(folder / f"shot.{i:04d}.png"), oiio.ImageSpec(rgb.shape[1], rgb.shape[0], 3, "uint8"))
        assert out.write_image(np.ascontiguousarray(rgb))
        out.close()
    return str(folder / "shot.####.png")


@pytest.mark.slow
@pytest.mark.skipif(not GOLDEN.is_file(), reason=f"needs {GOLDEN}")
def test_matches_the_official_video_inference_on_64_real_frames(tmp_path):
    """The golden array is what the official infer_video_depth returns for Video Depth Anything Small
    (the reference weight rule, seed 0) on 64 frames at input size 112: an 8-bit PNG sequence of those
    frames, rendered with --schedule official, matches it after one scale and shift for the shot."""
    with np.load(GOLDEN) as golden:
        frames, expected = golden["vda_shot_frames"], golden["vda_shot_depth"].astype(np.float64)
    pattern = _write_png_sequence(tmp_path / "plate", frames)
    out = str(tmp_path / "out" / "shot.####.exr")
    code = main([pattern, "-o", out, "--depth-model", "video-depth-anything-small", "--weights", "random:0",
                 "--depth-processing-size", "112", "--schedule", "official", "--passes", "depth", "--device", "cpu"])
    assert code == 0
    depth = np.stack([read_channels(out.replace("####", f"{n:04d}"), [conventions.DEPTH_CHANNEL])[..., 0]
                      for n in range(1, len(frames) + 1)]).astype(np.float64)
    design = np.stack([depth.ravel(), np.ones(depth.size)], axis=1)
    scale, shift = np.linalg.lstsq(design, expected.ravel(), rcond=None)[0]
    error = np.abs(scale * depth + shift - expected)
    span = expected.max() - expected.min()
    assert error.max() <= 0.005 * span and error.mean() <= 0.0005 * span, (error.max() / span, error.mean() / span)
