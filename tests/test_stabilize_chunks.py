"""With the stabiliser on, farm chunks in separate processes write exactly what one run writes: the
stabiliser's windows sit at fixed shot-relative positions (pipeline.stabilizing)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from pipeline_plates import write_plate

from bufferany_core import conventions
from bufferany_core.conventions import HEADER
from bufferany_core.frames import read_channels, read_info
from bufferany_core.pipeline.stabilizing import stabilizer_positions, stabilizer_schedule

CLI = [sys.executable, "-m", "bufferany_core.pipeline.cli"]
TINY = ["--depth-model", "video-depth-anything-tiny", "--normal-model", "buffer-anytime-normal-tiny",
        "--weights", "random", "--device", "cpu", "--window", "8", "--overlap", "2", "--processing-size", "28"]
SHOT = range(1001, 1049)  # 48 frames: three stabiliser windows


def render(*args):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=600)


def read(pattern: str, frames) -> np.ndarray:
    channels = [conventions.DEPTH_CHANNEL, *conventions.NORMAL_CHANNELS]
    return np.stack([read_channels(pattern.replace("####", f"{n:04d}"), channels) for n in frames])


def test_stabiliser_windows_depend_on_the_shot_only():
    schedule = stabilizer_schedule(48)
    assert [(w.start, w.stop) for w in schedule.windows] == [(0, 24), (12, 36), (24, 48)]
    # a chunk computes the frames within the filter's radius (20) of its own and the alignment windows
    # covering those, never more
    assert stabilizer_positions(48, list(range(16, 32))) == list(range(0, 48))
    assert stabilizer_positions(48, [0, 1]) == list(range(0, 36))
    assert stabilizer_positions(10, [3]) == list(range(10))
    assert stabilizer_positions(200, [100]) == list(range(64, 136))  # 84-116, windows 64-88 ... 112-136


@pytest.mark.slow
def test_three_stabilised_chunks_in_three_processes_equal_one_run(tmp_path):
    plate = write_plate(tmp_path / "plate", SHOT)
    whole = str(tmp_path / "whole" / "shot_buffers.####.exr")
    run = render(plate, "-o", whole, "--stabilize", *TINY)
    assert run.returncode == 0, run.stderr
    chunks = str(tmp_path / "chunks" / "shot_buffers.####.exr")
    for first, last in ((1001, 1016), (1017, 1032), (1033, 1050)):  # the last one overshoots, as farms do
        run = render(plate, "-o", chunks, "--frames", f"{first}-{last}", "--shot-range", "1001-1048", "--stabilize", *TINY)
        assert run.returncode == 0, run.stderr
    np.testing.assert_array_equal(read(whole, SHOT), read(chunks, SHOT))
    meta = read_info(chunks.replace("####", "1040")).metadata
    assert meta[HEADER.pass_stabilized("depth")] == 1 and meta[HEADER.pass_stabilized("normal")] == 1
