"""The normal model runs its own windows (its catalogue entry's), also when depth runs with it."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_plates import write_plate

from bufferany_core import conventions
from bufferany_core.frames import read_channels
from bufferany_core.jobs import RenderJob
from bufferany_core.models.catalog import get_model_entry
from bufferany_core.pipeline import render
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.render import plan_render, run_render

TINY = dict(
    depth_model="video-depth-anything-tiny",
    normal_model="buffer-anytime-normal-tiny",
    weights="random",
    device="cpu",
    depth_processing_size=28,
    normal_processing_size=28,
    stabilize="off",
)
FRAMES = range(1, 51)  # 50 frames: two depth windows (30 + 2 keys, overlap 10), two normal windows (32, overlap 8)


@pytest.mark.parametrize("normal_model", ["buffer-anytime-normal-tiny", "marigold-e2e-ft-normals-tiny"])
def test_each_pass_gets_its_own_models_windows(tmp_path, normal_model):
    pattern = write_plate(tmp_path, FRAMES)
    entry = get_model_entry("normal", normal_model)
    for passes in (("depth", "normal"), ("normal",)):
        plan = plan_render(RenderJob(input=pattern, passes=passes, **{**TINY, "normal_model": normal_model}))
        normal = plan.schedules["normal"]
        assert (normal.size, normal.overlap, normal.keys) == (entry.schedule.window, entry.schedule.overlap, 0)
        assert normal.span <= (entry.schedule.max_frames or normal.span)
    depth = plan_render(RenderJob(input=pattern, passes=("depth", "normal"), **TINY)).schedules["depth"]
    assert (depth.size, depth.overlap, depth.keys) == (32, 10, 2)
    explicit = plan_render(RenderJob(input=pattern, window=8, overlap=2, **TINY)).schedules
    assert [(s.size, s.overlap, s.keys) for s in explicit.values()] == [(8, 2, 2), (8, 2, 0)]


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    """(calls, outputs) of a depth+normal render, a normal-only and a depth-only render of one plate."""
    folder = tmp_path_factory.mktemp("normal_schedule")
    pattern = write_plate(folder / "in", FRAMES)
    predictors = PredictorCache()
    results = {}
    original = render._predict
    for passes in (("depth", "normal"), ("normal",), ("depth",)):
        calls: list[tuple[str, list[int]]] = []

        def spy(predictor, frames, what, calls=calls):
            calls.append((predictor.info.pass_name, [f.frame.number for f in frames]))  # FedFrames
            return original(predictor, frames, what)

        render._predict = spy
        try:
            job = RenderJob(input=pattern, output=str(folder / "-".join(passes) / "out.####.exr"), passes=passes, **TINY)
            run_render(job, predictors=predictors)
        finally:
            render._predict = original
        plan = plan_render(job)
        outputs = {
            name: np.stack([read_channels(plan.output.path(f), channels) for f in FRAMES])
            for name, channels in (("depth", [conventions.DEPTH_CHANNEL]), ("normal", conventions.NORMAL_CHANNELS))
            if name in passes
        }
        results[passes] = (calls, outputs)
    return results


def test_normal_calls_are_contiguous_windows_of_the_normal_schedule(renders):
    calls, _ = renders[("depth", "normal")]
    normal = [frames for name, frames in calls if name == "normal"]
    assert normal == [list(range(1, 33)), list(range(19, 51))]  # 32 contiguous frames, overlap 14 >= 8 (evenly spread)
    depth = [frames for name, frames in calls if name == "depth"]
    assert [len(f) for f in depth] == [30, 32]  # the reference window, then keys + 30 frames
    assert calls[: len(calls)] == sorted(calls, key=lambda c: (c[1][-1], c[0] != "depth"))


def test_a_pass_is_the_same_whether_the_other_runs_or_not(renders):
    _, both = renders[("depth", "normal")]
    _, normal_only = renders[("normal",)]
    _, depth_only = renders[("depth",)]
    np.testing.assert_array_equal(both["normal"], normal_only["normal"])
    np.testing.assert_array_equal(both["depth"], depth_only["depth"])
