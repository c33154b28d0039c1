"""Long shots in windows: coverage of the frame ranges and no seams between windows."""

import numpy as np
import pytest
import torch

from bufferany_core.flow import DISFlow
from bufferany_core.stabilize.windowed import stabilize_in_windows, window_ranges
from bufferany_core.testing.procedural_shot import add_depth_flicker, depth_scores, procedural_shot


def test_window_ranges_cover_every_frame_with_the_overlap():
    assert window_ranges(10, window=48, overlap=8) == [range(10)]
    ranges = window_ranges(100, window=48, overlap=8)
    assert ranges[0] == range(0, 48) and ranges[1] == range(40, 88) and ranges[-1] == range(52, 100)
    assert sorted(set().union(*map(set, ranges))) == list(range(100))
    with pytest.raises(ValueError, match="overlap"):
        window_ranges(10, window=4, overlap=4)
    with pytest.raises(ValueError, match="window"):
        window_ranges(10, window=1, overlap=0)


def test_windowed_stabilisation_yields_every_frame_once_in_order_without_seams():
    shot = procedural_shot(frames=14, height=48, width=64)
    flicker = add_depth_flicker(shot.inverse_depth, seed=6)
    loaded = []

    def load(span):
        loaded.append(span)
        return (
            torch.from_numpy(shot.plate[span.start : span.stop]),
            torch.from_numpy(flicker[span.start : span.stop]),
            None,
        )

    frames = list(stabilize_in_windows(14, load, DISFlow(), window=6, overlap=3))
    assert [f.index for f in frames] == list(range(14)) and all(f.normals is None for f in frames)
    assert max(len(span) for span in loaded) == 6  # bounded memory: one window at a time
    depth = torch.stack([f.depth for f in frames]).numpy()
    steps = np.abs(np.diff(depth, axis=0) - np.diff(shot.inverse_depth, axis=0)).mean(axis=(1, 2, 3))
    assert depth_scores(depth, shot.inverse_depth)[0] < 0.5 * depth_scores(flicker, shot.inverse_depth)[0]
    # Window joins (frames 3-5, 6-8, ...) must not stand out from the steps inside windows.
    assert steps.max() < 3 * np.median(steps)
