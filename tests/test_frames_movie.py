"""Movie files through OpenCV: the real clips in ../shared/data/real, and clips made here."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from bufferany_core.errors import ExitCode, FrameRangeError, InputNotFoundError, UnreadableImageError
from bufferany_core.frames import MovieReader, read_info, write_exr

CLIPS = {"davis_rollercoaster.mp4": (70, 960, 540), "tokyo_walk.mp4": (195, 1280, 720)}


@pytest.fixture(scope="module")
def real_clips(shared_dir):
    folder = shared_dir / "data" / "real"
    for name in CLIPS:
        if not (folder / name).is_file():
            pytest.fail(f"real clip {folder / name} is missing")
    return folder


@pytest.mark.parametrize(
    "name", ["davis_rollercoaster.mp4", pytest.param("tokyo_walk.mp4", marks=pytest.mark.slow)]
)
def test_real_clip_reads_every_frame(real_clips, name):
    count, width, height = CLIPS[name]
    with MovieReader(real_clips / name) as movie:
        assert (movie.frame_count, movie.width, movie.height) == (count, width, height)
        assert movie.fps > 0
        kept = {}
        for frame in range(1, count + 1):  # the declared count is really there
            rgb = movie.read(frame)
            assert rgb.shape == (height, width, 3) and rgb.dtype == np.float32
            assert 0.0 <= rgb.min() and rgb.max() <= 1.0
            if frame in (1, 2, count // 2, count):
                kept[frame] = rgb
        with pytest.raises(FrameRangeError):
            movie.read(count + 1)
        with pytest.raises(FrameRangeError):
            movie.read(0)
        # Seeking (backwards, forwards, to the last frame) gives the frames a straight read gave.
        for frame in (count // 2, 1, count, 2):
            np.testing.assert_array_equal(movie.read(frame), kept[frame])
        assert not np.array_equal(kept[1], kept[count])


def test_channels_come_back_rgb(tmp_path):
    path = tmp_path / "red.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 24, (32, 16))
    assert writer.isOpened()
    for _ in range(3):
        writer.write(np.tile(np.array([0, 0, 255], np.uint8), (16, 32, 1)))  # OpenCV writes BGR: red
    writer.release()
    with MovieReader(path) as movie:
        assert movie.frame_count == 3
        red, green, blue = movie.read(2).reshape(-1, 3).mean(axis=0)
    assert red > 0.9 and green < 0.1 and blue < 0.1


def test_corrupt_and_truncated_movies(tmp_path, real_clips):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 4096)
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((real_clips / "davis_rollercoaster.mp4").read_bytes()[:500_000])
    for path in (junk, truncated):
        with pytest.raises(UnreadableImageError) as raised:
            with MovieReader(path) as movie:
                for frame in range(1, movie.frame_count + 1):
                    movie.read(frame)
        assert str(path) in str(raised.value)
        assert raised.value.exit_code == ExitCode.UNREADABLE_IMAGE


def test_missing_movie(tmp_path):
    with pytest.raises(InputNotFoundError, match="nope.mov"):
        MovieReader(tmp_path / "nope.mov")


def test_frame_rate_reaches_the_output_header(tmp_path, real_clips):
    with MovieReader(real_clips / "davis_rollercoaster.mp4") as movie:
        info = movie.info
    assert (info.width, info.height, info.pixel_aspect) == (960, 540, 1.0)
    write_exr(tmp_path / "out.0001.exr", {"depth.Z": np.zeros((540, 960), np.float32)}, like=info)
    written = read_info(tmp_path / "out.0001.exr")
    assert written.metadata["FramesPerSecond"] == (24, 1)
    assert written.metadata_types["FramesPerSecond"] == "rational"
    assert written.display_window == (0, 0, 960, 540)
