"""Frame specs read with their Nuke/Deadline meaning."""

from __future__ import annotations

import pytest

from bufferany_core.errors import BadArgumentsError, ExitCode
from bufferany_core.frames import format_frame_spec, parse_frame_spec


@pytest.mark.parametrize(
    ("spec", "frames"),
    [
        ("1001", [1001]),
        ("1001-1005", [1001, 1002, 1003, 1004, 1005]),
        ("1001-1009x2", [1001, 1003, 1005, 1007, 1009]),
        ("1001-1010x4", [1001, 1005, 1009]),
        ("1001,1005,1010-1012", [1001, 1005, 1010, 1011, 1012]),
        ("1001, 1005 1010-1012", [1001, 1005, 1010, 1011, 1012]),  # Nuke also separates by spaces
        ("5-1", [1, 2, 3, 4, 5]),  # descending: same frames, rendered in time order
        ("10-1x3", [1, 4, 7, 10]),  # counted down from 10
        ("1:5", [1, 2, 3, 4, 5]),  # Deadline's colon range
        ("1:10:5", [1, 6]),  # Deadline's step, not fileseq's "staggered"
        ("3,1,2,3", [1, 2, 3]),  # sorted, without duplicates
        ("-3--1", [-3, -2, -1]),
        ("-2-1", [-2, -1, 0, 1]),
    ],
)
def test_parse_frame_spec(spec, frames):
    assert parse_frame_spec(spec) == frames


@pytest.mark.parametrize("spec", ["", "  ", "abc", "1-", "1001-1100y2", "1-10x0", "1-10:3:2", "1..10", "#"])
def test_bad_spec_names_the_spec(spec):
    with pytest.raises(BadArgumentsError) as raised:
        parse_frame_spec(spec)
    assert repr(spec) in str(raised.value)
    assert raised.value.exit_code == ExitCode.BAD_ARGUMENTS


@pytest.mark.parametrize(
    ("frames", "spec"),
    [
        ([1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009, 1010, 1012], "1001-1010,1012"),
        ([5], "5"),
        ([3, 1, 2], "1-3"),
        ([], ""),
    ],
)
def test_format_frame_spec(frames, spec):
    assert format_frame_spec(frames) == spec


@pytest.mark.parametrize(
    "frames", [[1, 3, 5, 7, 20, 21, 22], [-3, -2, -1, 0, 4], [1001, 1003, 1004, 1100], [-9, -7, -5]]
)
def test_format_reads_back(frames):
    assert parse_frame_spec(format_frame_spec(frames)) == sorted(frames)
