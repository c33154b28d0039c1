"""Cycle check on an exact synthetic occlusion and the width of the depth-edge exclusion band."""

import numpy as np
import pytest
import torch

from bufferany_core.flow import cycle_consistency_mask, depth_edge_mask, pair_validity
from bufferany_core.flow.masks import depth_to_u8

H, W = 24, 40
ROWS = slice(6, 16)


def _moving_square_flows():
    """A square (columns 10-19 in frame a, 14-23 in frame b) moving 4 px right over a still background."""
    fw = torch.zeros(1, 2, H, W)
    fw[0, 0, ROWS, 10:20] = 4.0  # frame a's square pixels move right
    bw = torch.zeros(1, 2, H, W)
    bw[0, 0, ROWS, 14:24] = -4.0  # frame b's square pixels came from the left
    return fw, bw


def test_cycle_check_rejects_exactly_the_occluded_pixels():
    fw, bw = _moving_square_flows()
    valid_a = cycle_consistency_mask(fw, bw, tau=1.0)[0, 0]
    expected_a = torch.ones(H, W, dtype=torch.bool)
    expected_a[ROWS, 20:24] = False  # background of frame a that the square covers in frame b
    assert torch.equal(valid_a, expected_a)
    valid_b = cycle_consistency_mask(bw, fw, tau=1.0)[0, 0]
    expected_b = torch.ones(H, W, dtype=torch.bool)
    expected_b[ROWS, 10:14] = False  # background of frame b that the square uncovered
    assert torch.equal(valid_b, expected_b)


def test_cycle_tolerance_is_a_threshold_on_the_round_trip_error():
    fw, bw = _moving_square_flows()
    assert cycle_consistency_mask(fw, bw, tau=4.0).all()  # the occlusion's error is exactly 4 px
    assert not cycle_consistency_mask(fw, bw, tau=3.99).all()
    with pytest.raises(ValueError, match="tau"):
        cycle_consistency_mask(fw, bw, tau=-1)


def test_pixels_leaving_the_frame_fail_the_cycle_check():
    fw = torch.full((1, 2, H, W), 0.0)
    fw[:, 0] = 5.0
    bw = -fw
    valid = cycle_consistency_mask(fw, bw)[0, 0]
    assert valid[:, : W - 5].all() and not valid[:, W - 5 :].any()


def test_edge_band_is_five_pixels_around_a_vertical_step():
    depth = torch.ones(2, 1, H, W)
    depth[:, :, :, 20:] = 3.0  # step between columns 19 and 20
    keep = depth_edge_mask(depth)
    # Canny marks one column at the step (OpenCV's non-maximum suppression keeps column 19); every
    # pixel at Manhattan distance < 3 from it is excluded: columns 17..21, in every row.
    excluded_columns = torch.nonzero(~keep[0, 0, H // 2]).flatten().tolist()
    assert excluded_columns == [17, 18, 19, 20, 21]
    assert torch.equal(keep[0, 0], keep[0, 0, :1].expand(H, W)) and torch.equal(keep[0], keep[1])


def test_edge_band_is_a_diamond_around_a_single_edge_point():
    # A corner of a square: Manhattan distance means diamonds, not squares, around edge pixels.
    depth = torch.zeros(1, 1, 40, 40)
    depth[..., 20:, 20:] = 1.0
    keep = depth_edge_mask(depth)[0, 0]
    assert keep[5, 5] and keep[35, 35] and not keep[30, 20] and not keep[20, 30]
    edges = ~keep
    # Beyond the corner, the band must not extend diagonally by 2 in both directions (that would be L_inf).
    corner_region = edges[15:19, 15:19]
    assert not corner_region[0, 0]


def test_smooth_ramp_has_no_edges_and_normalisation_is_percentile_based():
    ramp = torch.linspace(0, 1, W).expand(1, 1, H, W).contiguous()
    assert depth_edge_mask(ramp).all()
    frame = np.linspace(0, 1, 1000).reshape(25, 40)
    frame[0, 0] = 1e6  # one outlier must not squash the frame
    u8 = depth_to_u8(frame)
    assert u8.max() == 255 and u8[12, 20] == pytest.approx(128, abs=2)
    assert depth_to_u8(np.ones((4, 4))).max() == 0


def test_pair_validity_combines_cycle_and_edges():
    fw, bw = _moving_square_flows()
    depth = torch.zeros(2, 1, H, W)
    depth[0, :, ROWS, 10:20] = 1.0
    depth[1, :, ROWS, 14:24] = 1.0
    valid_fw, valid_bw = pair_validity(fw, bw, depth=depth)
    assert not valid_fw[0, 0, 10, 9:12].any()  # next to the square's left edge in frame a
    assert valid_fw[0, 0, 0, 0] and valid_fw[0, 0, 10, 15]
    assert not valid_bw[0, 0, 10, 22:26].any()
    with pytest.raises(ValueError, match="depth"):
        pair_validity(fw, bw, depth=depth[:1])
