"""Plate colour to model input through OpenColorIO (OpenImageIO's built-in config).

The reader keeps one OCIO processor per shot and converts half and 8-bit pixels by table look-up;
`openimageio_reference` is what it did before, per frame, and the results must stay equal to it."""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio
import pytest

from bufferany_core.errors import BadArgumentsError, ExitCode
from bufferany_core.frames import (
    DEFAULT_INPUT_COLORSPACE,
    ColourTransform,
    FrameSequence,
    ImageInfo,
    MovieReader,
    default_colorspace,
    read_frames,
    read_rgb,
    resolve_colorspace,
    to_model_srgb,
)


def srgb_encode(linear):
    """The sRGB transfer function (IEC 61966-2-1), written out independently of OCIO."""
    linear = np.asarray(linear, dtype=np.float64)
    return np.where(
        linear <= 0.0031308, 12.92 * linear, 1.055 * np.power(np.maximum(linear, 0), 1 / 2.4) - 0.055
    )


def pixels(*values):
    return np.array([[list(v) for v in values]], dtype=np.float32)  # (1, N, 3)


def test_default_is_scene_linear_rec709_to_srgb():
    assert resolve_colorspace(DEFAULT_INPUT_COLORSPACE) == "Linear Rec.709 (sRGB)"
    linear = np.linspace(0.0, 1.0, 33, dtype=np.float32)
    image = np.stack([linear, linear[::-1], linear], axis=-1)[None]  # (1, 33, 3)
    np.testing.assert_allclose(to_model_srgb(image), srgb_encode(image), atol=2e-4)


def test_out_of_range_values_are_clipped_after_the_transfer():
    out = to_model_srgb(pixels((4.0, -0.5, 1.0), (0.5, 16.0, -3.0)))
    assert out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    np.testing.assert_allclose(out, [[[1.0, 0.0, 1.0], [srgb_encode(0.5), 1.0, 0.0]]], atol=2e-4)


def test_exposure_is_in_stops_before_the_transfer():
    np.testing.assert_allclose(
        to_model_srgb(pixels((0.09, 0.045, 0.5)), exposure=1.0),
        to_model_srgb(pixels((0.18, 0.09, 1.0))),
        atol=1e-6,
    )
    assert to_model_srgb(pixels((2.0, 2.0, 2.0)), exposure=-1.0)[0, 0, 0] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("name", ["srgb_tx", "sRGB - Texture", "sRGB Encoded Rec.709 (sRGB)", "raw"])
def test_display_referred_and_raw_input_pass_through(name):
    image = pixels((0.2, 0.5, 0.9), (1.5, -0.1, 0.0))
    np.testing.assert_array_equal(to_model_srgb(image, colorspace=name), np.clip(image, 0, 1))


def test_acescg_input_changes_primaries_but_keeps_grey():
    grey_and_red = pixels((0.18, 0.18, 0.18), (0.3, 0.05, 0.05))
    from_acescg = to_model_srgb(grey_and_red, colorspace="ACEScg")
    from_linear = to_model_srgb(grey_and_red, colorspace="lin_rec709")
    np.testing.assert_allclose(from_acescg[0, 0], from_linear[0, 0], atol=1e-3)  # same white
    assert from_acescg[0, 1, 0] > from_linear[0, 1, 0] + 0.05  # AP1 red is more saturated than Rec.709 red


@pytest.mark.parametrize("alias", ["lin_rec709", "linear", "Linear Rec.709 (sRGB)", "lin_srgb"])
def test_aliases(alias):
    assert resolve_colorspace(alias) == "Linear Rec.709 (sRGB)"


def test_unknown_colour_space_lists_valid_names():
    with pytest.raises(BadArgumentsError) as raised:
        to_model_srgb(pixels((0.1, 0.1, 0.1)), colorspace="rec709_linear_typo")
    message = str(raised.value)
    assert raised.value.exit_code == ExitCode.BAD_ARGUMENTS
    assert "rec709_linear_typo" in message and "lin_rec709" in message and "ACEScg" in message


def test_wrong_shape():
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        to_model_srgb(np.zeros((4, 4, 4), np.float32))


def test_default_per_file_kind():
    half_exr = ImageInfo.for_size(4, 4)
    assert default_colorspace(half_exr) == "srgb_tx"  # 8-bit movie frames and PNG/JPEG
    float_plate = ImageInfo(
        width=4,
        height=4,
        data_window=(0, 0, 4, 4),
        display_window=(0, 0, 4, 4),
        pixel_aspect=1.0,
        channels=("R", "G", "B"),
        channel_formats=("half",) * 3,
    )
    assert default_colorspace(float_plate) == DEFAULT_INPUT_COLORSPACE


def openimageio_reference(rgb, colorspace, exposure=0.0):
    """A float32 copy of `rgb` times 2**exposure, OpenImageIO's colorconvert to sRGB, then the clip."""
    pixels = np.ascontiguousarray(rgb, dtype=np.float32) * np.float32(2.0**exposure)
    buffer = oiio.ImageBuf(pixels)
    assert oiio.ImageBufAlgo.colorconvert(buffer, buffer, colorspace, "srgb_tx"), buffer.geterror()
    return np.clip(buffer.get_pixels(oiio.FLOAT), 0.0, 1.0)


def every_half_mixed():
    """All 65536 half values in each channel, shuffled differently per channel: (256, 256, 3)."""
    halves = np.arange(65536, dtype=np.uint16).view(np.float16)
    rng = np.random.default_rng(3)
    return np.stack([halves, rng.permutation(halves), rng.permutation(halves)], axis=-1).reshape(256, 256, 3)


@pytest.mark.filterwarnings("ignore:invalid value encountered")  # the NaN halves, times the exposure
@pytest.mark.parametrize("colorspace", ["lin_rec709", "ACEScg", "ACES2065-1", "g22_rec709", "srgb_tx", "raw"])
@pytest.mark.parametrize("exposure", [0.0, 1.5])
def test_every_half_value_converts_exactly_as_openimageio_did(colorspace, exposure):
    rgb = every_half_mixed()
    converted = ColourTransform(colorspace=colorspace, exposure=exposure).convert(rgb)
    assert converted.dtype == np.float32 and converted.shape == rgb.shape
    np.testing.assert_array_equal(converted, openimageio_reference(rgb, colorspace, exposure))  # NaN too


@pytest.mark.parametrize("colorspace", ["lin_rec709", "ACEScg"])
def test_float_pixels_convert_in_place_exactly_as_openimageio_did(colorspace):
    rgb = np.random.default_rng(4).normal(0.3, 2.0, (300, 310, 3)).astype(np.float32)  # several bands
    expected = openimageio_reference(rgb, colorspace, 0.5)
    converted = ColourTransform(colorspace=colorspace, exposure=0.5).convert(rgb)
    assert converted is rgb  # in place: no copy of a frame
    np.testing.assert_array_equal(converted, expected)


@pytest.mark.parametrize("colorspace", ["srgb_tx", "ACEScg"])
def test_eight_bit_codes_convert_as_their_float_values(colorspace):
    codes = np.random.default_rng(5).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    converted = ColourTransform(colorspace=colorspace).convert(codes[:, ::-1])  # a strided view is fine
    as_float = np.multiply(codes[:, ::-1], np.float32(1 / 255), dtype=np.float32)
    expected = openimageio_reference(as_float, colorspace)
    np.testing.assert_array_equal(converted, expected)


def test_to_model_srgb_leaves_its_input_alone():
    image = pixels((0.5, 2.0, -1.0))
    to_model_srgb(image)
    np.testing.assert_array_equal(image, pixels((0.5, 2.0, -1.0)))


@pytest.fixture(scope="module")
def real_frame(shared_dir):
    """Frame 40 of a real clip, linearised and brightened (highlights above 1): (540, 960, 3) float32."""
    with MovieReader(shared_dir / "data" / "real" / "davis_rollercoaster.mp4") as movie:
        srgb = movie.read(40)
    buffer = oiio.ImageBuf(np.ascontiguousarray(srgb))
    assert oiio.ImageBufAlgo.colorconvert(buffer, buffer, "srgb_tx", "lin_rec709")
    return buffer.get_pixels(oiio.FLOAT) * np.float32(3.0)


@pytest.mark.parametrize("stored", ["half", "float"])
@pytest.mark.parametrize("compression", ["zip", "piz"])
def test_real_plates_read_exactly_as_before(tmp_path, real_frame, stored, compression):
    height, width, _ = real_frame.shape
    rgba = np.concatenate([real_frame, np.ones((height, width, 1), np.float32)], axis=-1)
    for frame in (1, 2):
        spec = oiio.ImageSpec(width, height, 4, stored)
        spec.channelnames = ("R", "G", "B", "A")
        spec.attribute("compression", compression)
        output = oiio.ImageOutput.create("plate.exr")
        assert output.open(str(tmp_path / f"plate.{frame:04d}.exr"), spec)
        assert output.write_image(rgba * frame)
        output.close()
    plate = FrameSequence.from_input(tmp_path / "plate.####.exr")
    for colorspace, exposure in ((None, 0.0), ("ACEScg", -0.5)):
        for frame in read_frames(plate, [1, 2], colorspace=colorspace, exposure=exposure):
            float_pixels, _ = read_rgb(frame.path)
            expected = openimageio_reference(float_pixels, colorspace or "lin_rec709", exposure)
            np.testing.assert_array_equal(frame.rgb, expected)


def test_real_movie_frames_read_exactly_as_before(shared_dir):
    movie_path = shared_dir / "data" / "real" / "davis_rollercoaster.mp4"
    for colorspace in (None, "g22_rec709"):
        frames = read_frames(FrameSequence.from_input(movie_path), [5, 6], colorspace=colorspace)
        with MovieReader(movie_path) as movie:
            for frame in frames:
                expected = openimageio_reference(movie.read(frame.number), colorspace or "srgb_tx")
                np.testing.assert_array_equal(frame.rgb, expected)


def _convert_in_child(rgb, results):
    results.put(ColourTransform(colorspace="ACEScg").convert(rgb))


def test_a_forked_process_converts_too():
    """DataLoader workers are forked from a process that may have converted frames already: the
    colour threads of the parent do not exist in the child, and it must not wait for them."""
    import multiprocessing

    rgb = np.random.default_rng(6).random((600, 600, 3), dtype=np.float32)  # several bands
    expected = ColourTransform(colorspace="ACEScg").convert(rgb.copy())  # the parent's threads start
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_convert_in_child, args=(rgb, results))
    child.start()
    try:
        np.testing.assert_array_equal(results.get(timeout=60), expected)
    finally:
        child.join(timeout=10)
        child.kill()
