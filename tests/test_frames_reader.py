"""The one frame reader over sequences and movies, and every bad input with its exit code."""

from __future__ import annotations

import numpy as np
import pytest
from frames_util import write_image, write_sequence

from bufferany_core.errors import (
    ExitCode,
    MissingFramesError,
    MixedResolutionError,
    NonFiniteError,
    UnreadableImageError,
)
from bufferany_core.frames import FrameSequence, read_frames, validate_sequence


def srgb(value):
    return 1.055 * value ** (1 / 2.4) - 0.055


@pytest.fixture
def plate(tmp_path):
    write_sequence(tmp_path, "shot.{frame:04d}.exr", range(1001, 1006), value=0.18)
    return FrameSequence.from_input(tmp_path / "shot.####.exr")


def test_reads_numbered_model_ready_frames(plate):
    frames = list(read_frames(plate, [1004, 1001, 1002]))
    assert [frame.number for frame in frames] == [1004, 1001, 1002]  # the order asked for
    for frame in frames:
        assert frame.rgb.shape == (6, 8, 3) and frame.rgb.dtype == np.float32
        assert frame.path == plate.path(frame.number)
        assert frame.info.width == 8 and frame.info.height == 6
        # scene-linear 0.18 grey -> sRGB 0.46 by default
        assert frame.rgb[3, 3] == pytest.approx([srgb(0.18)] * 3, abs=1e-3)
    assert frames[0].rgb[0, 0, 0] != frames[1].rgb[0, 0, 0]  # really different files


def test_colorspace_and_exposure_options(plate):
    (as_display,) = read_frames(plate, [1001], colorspace="srgb_tx")
    assert as_display.rgb[3, 3, 0] == pytest.approx(0.18, abs=1e-3)
    (brighter,) = read_frames(plate, [1001], exposure=1.0)
    assert brighter.rgb[3, 3, 0] == pytest.approx(srgb(0.36), abs=1e-3)


def test_eight_bit_images_are_taken_as_srgb(tmp_path):
    for frame in (1, 2):
        write_image(tmp_path / f"img.{frame:03d}.png", np.full((4, 4, 3), 128, np.uint8), fmt="uint8")
    (frame,) = read_frames(FrameSequence.from_input(tmp_path / "img.###.png"), [2])
    np.testing.assert_allclose(frame.rgb, 128 / 255, atol=1e-6)


def test_reads_lazily(tmp_path):
    write_sequence(tmp_path, "s.{frame:04d}.exr", [1, 2, 3])
    (tmp_path / "s.0003.exr").write_bytes(b"broken")
    frames = read_frames(FrameSequence.from_input(tmp_path / "s.####.exr"), [1, 2, 3])
    assert next(frames).number == 1 and next(frames).number == 2  # before the broken frame is touched
    with pytest.raises(UnreadableImageError, match="s.0003.exr"):
        next(frames)


def test_movie_frames(shared_dir):
    movie = FrameSequence.from_input(shared_dir / "data" / "real" / "davis_rollercoaster.mp4")
    frames = list(read_frames(movie, [70, 1, 35]))
    assert [frame.number for frame in frames] == [70, 1, 35]
    for frame in frames:
        assert frame.rgb.shape == (540, 960, 3) and frame.path is None
        assert 0.0 <= frame.rgb.min() and frame.rgb.max() <= 1.0
    assert frames[0].info.display_window == (0, 0, 960, 540) and frames[0].info.pixel_aspect == 1.0
    assert validate_sequence(movie, movie.select(None)).width == 960


def test_validate_sequence_returns_first_header(plate):
    info = validate_sequence(plate, plate.select(None))
    assert (info.width, info.height) == (8, 6)


def test_missing_frames(plate):
    plate.path(1003).unlink()
    with pytest.raises(MissingFramesError) as raised:
        validate_sequence(plate, [1001, 1002, 1003, 1004])
    assert raised.value.exit_code == ExitCode.MISSING_FRAMES
    assert (
        raised.value.frames == [1003] and "1003" in str(raised.value) and "shot.####.exr" in str(raised.value)
    )
    with pytest.raises(MissingFramesError, match="shot.1003.exr"):
        list(read_frames(plate, [1002, 1003]))


def test_mixed_resolution(plate):
    write_image(plate.path(1003), np.zeros((6, 9, 3), np.float32))
    for run in (
        lambda: validate_sequence(plate, plate.select(None)),
        lambda: list(read_frames(plate, plate.select(None))),
    ):
        with pytest.raises(MixedResolutionError) as raised:
            run()
        message = str(raised.value)
        assert raised.value.exit_code == ExitCode.MIXED_RESOLUTION
        assert (
            "frame 1003" in message and "9x6" in message and "8x6" in message and "shot.1003.exr" in message
        )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_pixels(plate, bad):
    pixels = np.full((6, 8, 3), 0.5, np.float32)
    pixels[1, 2, 0] = bad
    pixels[4, 5, :] = bad
    write_image(plate.path(1002), pixels, fmt="float")
    with pytest.raises(NonFiniteError) as raised:
        list(read_frames(plate, [1001, 1002]))
    assert raised.value.exit_code == ExitCode.NON_FINITE
    assert "shot.1002.exr" in str(raised.value) and "2 pixel(s)" in str(raised.value)
    assert len(list(read_frames(plate, [1002], check_finite=False))) == 1


def test_non_finite_alpha_is_ignored(tmp_path):
    pixels = np.full((2, 2, 4), 0.5, np.float32)
    pixels[0, 0, 3] = np.nan
    write_image(tmp_path / "a.0001.exr", pixels, ("R", "G", "B", "A"), fmt="float")
    (frame,) = read_frames(FrameSequence.from_input(tmp_path / "a.0001.exr"), [1])
    assert np.isfinite(frame.rgb).all()


def test_truncated_frame_names_the_file(plate):
    write_image(plate.path(1005), np.random.default_rng(0).random((6, 8, 3), dtype=np.float32), fmt="float")
    data = plate.path(1005).read_bytes()
    plate.path(1005).write_bytes(data[: len(data) - 64])
    with pytest.raises(UnreadableImageError) as raised:
        validate_sequence(plate, plate.select(None))  # header intact: validation passes ...
        list(read_frames(plate, plate.select(None)))  # ... the pixel read fails
    assert raised.value.exit_code == ExitCode.UNREADABLE_IMAGE
    assert "shot.1005.exr" in str(raised.value)


def test_plate_without_colour_channels_fails_validation(tmp_path):
    write_image(tmp_path / "d.0001.exr", np.zeros((2, 2, 1), np.float32), ("depth.Z",))
    sequence = FrameSequence.from_input(tmp_path / "d.0001.exr")
    with pytest.raises(
        UnreadableImageError, match=r"d\.0001\.exr has no R, G, B or Y channels \(it has: depth\.Z\)"
    ):
        validate_sequence(sequence, [1])
