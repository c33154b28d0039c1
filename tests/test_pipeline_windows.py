"""Window schedule and alignment arithmetic, with exact expected answers."""

from __future__ import annotations

import numpy as np
import pytest

from bufferany_core.pipeline.align import inverse_to_distance, reference_range, renormalise
from bufferany_core.pipeline.windows import WindowSchedule
from bufferany_core.scale_shift import fit_scale_shift


def test_vda_defaults_give_evenly_spread_windows_covering_the_shot():
    s = WindowSchedule(length=100, size=32, overlap=10, keys=2)
    assert [(w.start, w.stop) for w in s.windows] == [(0, 30), (18, 48), (35, 65), (52, 82), (70, 100)]
    covered = sorted({p for w in s.windows for p in w.positions})
    assert covered == list(range(100))
    for a, b in zip(s.windows, s.windows[1:], strict=False):
        assert a.stop - b.start >= 10


def test_short_shot_is_one_window():
    s = WindowSchedule(length=7, size=32, overlap=10)
    assert [(w.start, w.stop) for w in s.windows] == [(0, 7)]
    assert s.blend_weights(3) == {0: 1.0}


def test_two_window_overlap_is_a_linear_cross_fade():
    s = WindowSchedule(length=40, size=22, overlap=4, keys=2)
    # 20 shot frames per window, stride at most 16: ceil((40 - 20) / 16) + 1 = 3 windows, evenly spread.
    assert [(w.start, w.stop) for w in s.windows] == [(0, 20), (10, 30), (20, 40)]
    # Positions 10..19 are shared by windows 0 and 1 (10 frames): weights (10-j)/11 and (j+1)/11.
    for j in range(10):
        w = s.blend_weights(10 + j)
        assert w[0] == pytest.approx((10 - j) / 11) and w[1] == pytest.approx((j + 1) / 11)
    assert s.blend_weights(0) == {0: 1.0}
    assert s.blend_weights(39) == {2: 1.0}


def test_weights_sum_to_one_everywhere_even_with_triple_coverage():
    s = WindowSchedule(length=91, size=32, overlap=14, keys=2)
    for p in range(91):
        assert sum(s.blend_weights(p).values()) == pytest.approx(1.0)


def test_windows_for_a_chunk_include_the_alignment_context_window():
    s = WindowSchedule(length=100, size=32, overlap=10)
    chunk = range(50, 60)  # covered by windows 2 (35-65) and 3 (52-82)
    assert [w.index for w in s.windows_for(chunk)] == [1, 2, 3]
    assert [w.index for w in s.windows_for(range(0, 5))] == [0]
    assert s.final_after(60) == 3 and s.final_after(5) == 0


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="overlap"):
        WindowSchedule(length=10, size=12, overlap=6, keys=2)
    with pytest.raises(ValueError, match="keys"):
        WindowSchedule(length=10, size=12, overlap=2, keys=-1)
    with pytest.raises(ValueError, match="at least one frame"):
        WindowSchedule(length=0, size=12, overlap=2)


def test_scale_shift_recovers_the_exact_affine_map():
    rng = np.random.default_rng(0)
    src = [rng.random((6, 5)), rng.random((6, 5))]
    tgt = [2.5 * s - 0.75 for s in src]
    scale, shift = fit_scale_shift(src, tgt)
    assert scale == pytest.approx(2.5, abs=1e-12) and shift == pytest.approx(-0.75, abs=1e-12)


def test_scale_shift_least_squares_answer_by_hand():
    # x = [0, 1, 2, 3], y = [1, 2, 2, 5]: slope = cov/var = 1.2, intercept = 2.5 - 1.2 * 1.5 = 0.7
    scale, shift = fit_scale_shift([np.array([[0.0, 1.0], [2.0, 3.0]])], [np.array([[1.0, 2.0], [2.0, 5.0]])])
    assert scale == pytest.approx(1.2) and shift == pytest.approx(0.7)


def test_flat_source_gets_unit_scale_and_mean_offset():
    scale, shift = fit_scale_shift([np.full((2, 2), 3.0)], [np.array([[1.0, 2.0], [3.0, 6.0]])])
    assert (scale, shift) == (1.0, pytest.approx(0.0))


def test_mismatched_shapes_are_refused():
    with pytest.raises(ValueError, match="shapes differ"):
        fit_scale_shift([np.zeros((2, 2))], [np.zeros((2, 3))])


def test_reference_range_maps_quantiles_to_zero_and_one():
    values = np.linspace(0.0, 100.0, 10001).reshape(1, 10001)
    offset, scale = reference_range([values])
    assert offset == pytest.approx(2.0) and scale == pytest.approx(1 / 96.0)


def test_renormalise_a_cross_faded_normal():
    mixed = 0.5 * np.array([[1.0], [0.0], [0.0]]) + 0.5 * np.array([[0.0], [1.0], [0.0]])
    np.testing.assert_allclose(renormalise(mixed)[:, 0], [2**-0.5, 2**-0.5, 0.0])


def test_renormalise_is_np_linalg_norms_unit_vector_to_the_bit_and_writes_float32_as_a_cast_would():
    # the written normals of renders before the faster renormalise: float64 unit vectors cast to float32
    rng = np.random.default_rng(3)
    cross_faded = 0.3 * rng.normal(size=(3, 64, 48)) + 0.7 * rng.normal(size=(3, 64, 48))
    cross_faded[:, 0, 0] = 0.0  # zero stays zero
    before = cross_faded / np.maximum(np.linalg.norm(cross_faded, axis=0, keepdims=True), 1e-12)
    np.testing.assert_array_equal(renormalise(cross_faded), before)
    written = renormalise(cross_faded, dtype=np.float32)
    assert written.dtype == np.float32
    np.testing.assert_array_equal(written, before.astype(np.float32))
    last_axis = np.moveaxis(cross_faded, 0, -1)
    np.testing.assert_array_equal(renormalise(last_axis, axis=-1), np.moveaxis(before, 0, -1))


def test_distance_convention():
    np.testing.assert_allclose(inverse_to_distance(np.array([0.0, 0.99, -5.0])), [100.0, 1.0, 1000.0])


def test_farm_depth_key_frames_sit_where_the_official_inference_puts_them():
    from bufferany_core.pipeline.windows import key_positions

    s = WindowSchedule(length=100, size=32, overlap=10, keys=2)
    assert key_positions(s.windows[0]) == ()  # the first window is the shot's reference: contiguous frames only
    for w in s.windows[1:]:
        assert key_positions(w) == (0, w.start - 12)  # the shot's first frame, 12 frames before its own
