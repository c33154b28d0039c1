"""Sequence paths in every accepted form, frame selection and default output names."""

from __future__ import annotations

from pathlib import Path

import pytest

from bufferany_core.errors import (
    BadArgumentsError,
    ExitCode,
    FrameRangeError,
    InputNotFoundError,
    MissingFramesError,
)
from bufferany_core.frames import FrameSequence, output_sequence_for

REAL_CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "davis_rollercoaster.mp4"


def touch_frames(folder: Path, name: str, frames) -> None:
    for frame in frames:
        (folder / name.format(frame=frame)).touch()


@pytest.fixture
def shot(tmp_path):
    touch_frames(tmp_path, "shot.{frame:04d}.exr", range(1001, 1006))
    # Neighbours that must not be taken for frames of shot.####.exr:
    touch_frames(tmp_path, "shot.{frame:02d}.exr", [7])  # other padding
    touch_frames(tmp_path, "shot.{frame:04d}.exr.bak", [1003])
    touch_frames(tmp_path, "shot_v2.{frame:04d}.exr", [1001])
    touch_frames(tmp_path, "shot.{frame:04d}.png", [1010])
    return tmp_path


@pytest.mark.parametrize(
    "name",
    ["shot.####.exr", "shot.%04d.exr", "shot.$F4.exr", "shot.@@@@.exr", "shot.1001.exr", "shot.1004.exr"],
)
def test_every_path_form_finds_the_same_sequence(shot, name):
    sequence = FrameSequence.from_input(shot / name)
    assert sequence.frames == [1001, 1002, 1003, 1004, 1005]
    assert sequence.padding == 4
    assert sequence.pattern == str(shot / "shot.%04d.exr")
    assert sequence.hash_pattern == str(shot / "shot.####.exr")
    assert sequence.path(1003) == shot / "shot.1003.exr"
    assert not sequence.is_movie


def test_unpadded_sequences(tmp_path):
    touch_frames(tmp_path, "plate_{frame}.exr", [8, 9, 10, 11])
    touch_frames(tmp_path, "plate_{frame:03d}.exr", [5])  # padded: not part of plate_%d
    for name in ("plate_%d.exr", "plate_$F.exr", "plate_#.exr", "plate_9.exr"):
        sequence = FrameSequence.from_input(tmp_path / name)
        assert sequence.frames == [8, 9, 10, 11], name
        assert sequence.pattern == str(tmp_path / "plate_%d.exr")
        assert sequence.path(12) == tmp_path / "plate_12.exr"


def test_padding_overflow_and_negative_frames(tmp_path):
    touch_frames(tmp_path, "s.{frame:04d}.exr", [-2, -1, 0, 9999, 10000])
    sequence = FrameSequence.from_input(tmp_path / "s.####.exr")
    assert sequence.frames == [-2, -1, 0, 9999, 10000]
    assert sequence.path(-2).name == "s.-002.exr"
    assert sequence.path(10000).name == "s.10000.exr"


def test_relative_path_becomes_absolute(shot, monkeypatch):
    monkeypatch.chdir(shot)
    sequence = FrameSequence.from_input("shot.####.exr")
    assert Path(sequence.pattern).is_absolute()
    assert sequence.path(1001).is_file()


def test_number_in_the_folder_name_is_not_the_frame(tmp_path):
    folder = tmp_path / "v002"
    folder.mkdir()
    touch_frames(folder, "bg_plate.{frame:04d}.dpx", [1, 2, 3])
    assert FrameSequence.from_input(folder / "bg_plate.0002.dpx").frames == [1, 2, 3]


def test_still_image_is_frame_one(tmp_path):
    (tmp_path / "photo.exr").touch()
    sequence = FrameSequence.from_input(tmp_path / "photo.exr")
    assert sequence.frames == [1]
    assert sequence.path(1) == tmp_path / "photo.exr"
    assert sequence.select(None) == [1]
    with pytest.raises(FrameRangeError):
        sequence.path(2)
    assert output_sequence_for(sequence).hash_pattern == str(tmp_path / "photo_buffers.####.exr")


def test_movie_frames_number_from_one():
    sequence = FrameSequence.from_input(REAL_CLIP)
    assert sequence.is_movie
    assert sequence.frames == list(range(1, 71))
    assert sequence.select("60-70") == list(range(60, 71))
    with pytest.raises(FrameRangeError):
        sequence.select("0-10")
    with pytest.raises(BadArgumentsError):
        sequence.path(1)


@pytest.mark.parametrize(
    "name",
    ["nothing.####.exr", "nothing.%04d.exr", "nothing.1001.exr", "missing_folder/shot.####.exr", "clip.mp4"],
)
def test_nothing_there_is_input_not_found(shot, name):
    with pytest.raises(InputNotFoundError) as raised:
        FrameSequence.from_input(shot / name)
    assert raised.value.exit_code == ExitCode.INPUT_NOT_FOUND
    assert name.split("/")[0].split(".")[0] in str(raised.value)  # names what the user gave


def test_empty_folder_is_input_not_found(tmp_path):
    with pytest.raises(InputNotFoundError, match="no files match"):
        FrameSequence.from_input(tmp_path / "shot.####.exr")


def test_two_frame_tokens_are_refused(tmp_path):
    with pytest.raises(BadArgumentsError, match="more than one frame token"):
        FrameSequence.from_input(tmp_path / "shot.####.%04d.exr")


def test_select(shot):
    sequence = FrameSequence.from_input(shot / "shot.####.exr")
    assert sequence.select(None) == [1001, 1002, 1003, 1004, 1005]
    assert sequence.select("1001-1005x2") == [1001, 1003, 1005]
    assert sequence.select("1005-1002") == [1002, 1003, 1004, 1005]


@pytest.mark.parametrize("spec", ["1000-1005", "1001-1006", "990", "1001,1200"])
def test_spec_outside_the_sequence(shot, spec):
    sequence = FrameSequence.from_input(shot / "shot.####.exr")
    with pytest.raises(FrameRangeError) as raised:
        sequence.select(spec)
    message = str(raised.value)
    assert raised.value.exit_code == ExitCode.FRAME_RANGE
    assert spec in message and "1001-1005" in message and "shot.####.exr" in message


def test_missing_frames_are_named(tmp_path):
    touch_frames(tmp_path, "shot.{frame:04d}.exr", [1001, 1002, 1006, 1008, 1009, 1010])
    sequence = FrameSequence.from_input(tmp_path / "shot.####.exr")
    with pytest.raises(MissingFramesError) as raised:
        sequence.select(None)  # a hole in a plate is an error even without a spec
    assert raised.value.exit_code == ExitCode.MISSING_FRAMES
    assert raised.value.frames == [1003, 1004, 1005, 1007]
    assert "1003-1005,1007" in str(raised.value) and "shot.####.exr" in str(raised.value)
    assert sequence.select("1008-1010") == [1008, 1009, 1010]
    assert sequence.select("1002-1010x4") == [1002, 1006, 1010]
    with pytest.raises(MissingFramesError, match="1004"):
        sequence.select("1002-1006x2")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("shot.####.exr", "shot_buffers.####.exr"),
        ("shot_####.exr", "shot_buffers_####.exr"),
        ("shot.%06d.dpx", "shot_buffers.######.exr"),
        ("shot.%d.exr", "shot_buffers.####.exr"),
        ("shot.####_v2.exr", "shot_buffers.####_v2.exr"),
    ],
)
def test_output_sequence_beside_the_input(tmp_path, name, expected):
    sequence = FrameSequence.for_output(tmp_path / name)
    assert output_sequence_for(sequence).hash_pattern == str(tmp_path / expected)


def test_output_sequence_for_a_movie():
    output = output_sequence_for(FrameSequence.from_input(REAL_CLIP))
    assert output.hash_pattern == str(REAL_CLIP.parent / "davis_rollercoaster_buffers.####.exr")
    assert output.path(1).name == "davis_rollercoaster_buffers.0001.exr"


def test_for_output(tmp_path):
    touch_frames(tmp_path, "out.{frame:04d}.exr", [3, 4])
    output = FrameSequence.for_output(tmp_path / "out.%04d.exr")
    assert output.frames == [3, 4]  # already written: a re-run can skip them
    assert output.path(5) == tmp_path / "out.0005.exr"
    fresh = FrameSequence.for_output(tmp_path / "new" / "depth.exr", padding=5)
    assert fresh.frames == []
    assert fresh.hash_pattern == str(tmp_path / "new" / "depth.#####.exr")
    with pytest.raises(BadArgumentsError):
        FrameSequence.for_output(tmp_path / "out.mov")


def test_folder_input_says_what_to_give(tmp_path):
    with pytest.raises(InputNotFoundError, match=r"is a folder: name a file or a pattern"):
        FrameSequence.from_input(tmp_path)
