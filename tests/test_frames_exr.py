"""EXR and image I/O through OpenImageIO: geometry, channels, formats and metadata survive; writes are
lossless and atomic."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import OpenImageIO as oiio
import pytest
from frames_util import write_image, write_parts

from bufferany_core import conventions
from bufferany_core.errors import (
    BadArgumentsError,
    ExitCode,
    InputNotFoundError,
    OutputNotWritableError,
    UnreadableImageError,
)
from bufferany_core.frames import read_channels, read_info, read_rgb, write_exr, write_exr_parts

RNG = np.random.default_rng(7)

PLATE_ATTRIBUTES = {
    "smpte:TimeCode": ("timecode", (0x01020304, 0)),  # 01:02:03:04
    "FramesPerSecond": ("rational", (24000, 1001)),
    "cameraFocalLength": ("float", 35.0),
    "worldToCamera": ("matrix", tuple(float(i) for i in range(16))),
    "studio/shot": ("string", "sq010_sh0040"),
    "compression": ("string", "dwaa"),
}


def random_pixels(height, width, channels):
    return RNG.standard_normal((height, width, channels)).astype(np.float32) * 10


@pytest.mark.parametrize(
    ("origin", "display"),
    [((-16, -8), (0, 0, 32, 16)), ((4, 2), (0, 0, 40, 24)), ((0, 0), (0, 0, 64, 32))],
    ids=["overscan", "crop", "plain"],
)
def test_windows_and_pixel_aspect_are_kept(tmp_path, origin, display):
    pixels = random_pixels(20, 48, 3)
    attributes = {"PixelAspectRatio": ("float", 2.0)}
    plate = write_image(
        tmp_path / "plate.exr", pixels, fmt="float", origin=origin, display=display, attributes=attributes
    )
    info = read_info(plate)
    assert info.data_window == (*origin, 48, 20)
    assert info.display_window == display
    assert (info.width, info.height, info.pixel_aspect) == (48, 20, 2.0)
    rgb, _ = read_rgb(plate)
    np.testing.assert_array_equal(rgb, pixels)

    depth = pixels[:, :, 0]
    write_exr(tmp_path / "out.exr", {conventions.DEPTH_CHANNEL: depth}, like=info)
    written = read_info(tmp_path / "out.exr")
    assert written.data_window == info.data_window
    assert written.display_window == info.display_window
    assert written.pixel_aspect == 2.0
    np.testing.assert_array_equal(
        read_channels(tmp_path / "out.exr", [conventions.DEPTH_CHANNEL])[:, :, 0], depth
    )


def test_multi_part_channels_found_by_name(tmp_path):
    beauty, depth, normals = random_pixels(6, 8, 4), random_pixels(6, 8, 1), random_pixels(6, 8, 3)
    path = write_parts(
        tmp_path / "multi.exr",
        [
            ("beauty", ("R", "G", "B", "A"), beauty),
            ("depth", ("depth.Z",), depth),
            ("normals", ("N.X", "N.Y", "N.Z"), normals),
        ],
    )
    info = read_info(path)
    assert info.subimages == 3
    assert info.channels == ("R", "G", "B", "A", "depth.Z", "N.X", "N.Y", "N.Z")
    got = read_channels(path, ["N.Y", "R", "depth.Z", "N.X"])
    assert got.shape == (6, 8, 4) and got.dtype == np.float32
    np.testing.assert_array_equal(got[:, :, 0], normals[:, :, 1])
    np.testing.assert_array_equal(got[:, :, 1], beauty[:, :, 0])
    np.testing.assert_array_equal(got[:, :, 2], depth[:, :, 0])
    np.testing.assert_array_equal(got[:, :, 3], normals[:, :, 0])
    np.testing.assert_array_equal(read_channels(path, ["depth.Z"], subimage=1)[:, :, 0], depth[:, :, 0])
    with pytest.raises(UnreadableImageError, match=r"no channel depth\.Z .*R, G, B, A"):
        read_channels(path, ["depth.Z"], subimage=0)


def test_write_multi_part(tmp_path):
    depth, normals = random_pixels(5, 7, 1)[:, :, 0], random_pixels(5, 7, 3)
    parts = [
        ("depth", {"depth.Z": depth}),
        ("N", {name: normals[:, :, i] for i, name in enumerate(conventions.NORMAL_CHANNELS)}),
    ]
    write_exr_parts(
        tmp_path / "parts.exr", parts, metadata={"bufferany/version": "1"}, half=conventions.NORMAL_CHANNELS
    )
    source = oiio.ImageInput.open(str(tmp_path / "parts.exr"))
    names = []
    while source.seek_subimage(len(names), 0):
        names.append(source.spec().get_string_attribute("oiio:subimagename"))
        assert source.spec().get_string_attribute("bufferany/version") == "1"
    source.close()
    assert names == ["depth", "N"]
    np.testing.assert_array_equal(read_channels(tmp_path / "parts.exr", ["depth.Z"])[:, :, 0], depth)
    assert read_info(tmp_path / "parts.exr").channel_formats == ("float", "half", "half", "half")
    with pytest.raises(BadArgumentsError, match="distinct"):
        write_exr_parts(tmp_path / "bad.exr", [("a", {"X": depth}), ("a", {"Y": depth})])


def test_half_and_float_in_one_part(tmp_path):
    depth, normal = random_pixels(4, 5, 1)[:, :, 0], random_pixels(4, 5, 1)[:, :, 0]
    write_exr(tmp_path / "mixed.exr", {"depth.Z": depth, "N.X": normal}, half=["N.X"])
    info = read_info(tmp_path / "mixed.exr")
    assert info.channels == ("N.X", "depth.Z")  # EXR keeps channels sorted by name
    assert info.channel_formats == ("half", "float")
    got = read_channels(tmp_path / "mixed.exr", ["depth.Z", "N.X"])
    np.testing.assert_array_equal(got[:, :, 0], depth)  # float: bit exact
    np.testing.assert_array_equal(got[:, :, 1], normal.astype(np.float16).astype(np.float32))
    with pytest.raises(BadArgumentsError, match="N.Y"):
        write_exr(tmp_path / "x.exr", {"N.X": normal}, half=["N.Y"])


def test_metadata_round_trip(tmp_path):
    plate = write_image(tmp_path / "plate.exr", random_pixels(4, 4, 3), attributes=PLATE_ATTRIBUTES)
    info = read_info(plate)
    assert info.metadata["smpte:TimeCode"] == (0x01020304, 0)
    assert not any(name.startswith("oiio:") for name in info.metadata)
    assert "compression" not in info.metadata
    write_exr(
        tmp_path / "out.exr",
        {"depth.Z": np.zeros((4, 4), np.float32)},
        like=info,
        metadata={"bufferany/version": "0.1.0", "bufferany/untrained": 1, "bufferany/scale": 0.5},
    )
    spec = oiio.ImageInput.open(str(tmp_path / "out.exr")).spec()
    types = {attribute.name: str(attribute.type) for attribute in spec.extra_attribs}
    assert spec.getattribute("smpte:TimeCode") == (0x01020304, 0)
    assert types["smpte:TimeCode"] == "timecode"
    assert spec.getattribute("FramesPerSecond") == (24000, 1001)
    assert types["FramesPerSecond"] == "rational"
    assert types["worldToCamera"] == "matrix"
    assert spec.getattribute("cameraFocalLength") == 35.0
    assert spec.getattribute("worldToCamera") == PLATE_ATTRIBUTES["worldToCamera"][1]
    assert spec.getattribute("studio/shot") == "sq010_sh0040"
    assert spec.getattribute("bufferany/version") == "0.1.0"
    assert spec.getattribute("bufferany/untrained") == 1
    assert spec.getattribute("bufferany/scale") == 0.5
    assert spec.getattribute("compression") == conventions.DEFAULT_COMPRESSION  # plate's dwaa reset


@pytest.mark.parametrize("compression", conventions.LOSSLESS_COMPRESSIONS)
def test_lossless_compressions_are_bit_exact(tmp_path, compression):
    data = {"depth.Z": random_pixels(16, 16, 1)[:, :, 0], "R": random_pixels(16, 16, 1)[:, :, 0]}
    write_exr(tmp_path / "d.exr", data, compression=compression)
    assert oiio.ImageInput.open(str(tmp_path / "d.exr")).spec().getattribute("compression") == compression
    np.testing.assert_array_equal(
        read_channels(tmp_path / "d.exr", ["depth.Z", "R"]), np.stack(list(data.values()), -1)
    )


@pytest.mark.parametrize("compression", ["dwaa", "dwab", "b44", "b44a", "pxr24", "jpeg", "zip:4"])
def test_lossy_compression_is_refused(tmp_path, compression):
    with pytest.raises(BadArgumentsError, match=compression) as raised:
        write_exr(tmp_path / "d.exr", {"depth.Z": np.zeros((2, 2), np.float32)}, compression=compression)
    assert raised.value.exit_code == ExitCode.BAD_ARGUMENTS
    assert list(tmp_path.iterdir()) == []


def test_wrong_shapes_are_refused(tmp_path):
    info = read_info(write_image(tmp_path / "p.exr", random_pixels(4, 6, 3)))
    with pytest.raises(ValueError, match="6x4"):
        write_exr(tmp_path / "o.exr", {"depth.Z": np.zeros((4, 5), np.float32)}, like=info)
    with pytest.raises(ValueError, match="one shape"):
        write_exr(tmp_path / "o.exr", {"A": np.zeros((4, 6)), "B": np.zeros((4, 5))})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.exr"]


def test_unwritable_folder(tmp_path):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the output folder should be")  # stops root too, unlike chmod
    with pytest.raises(OutputNotWritableError) as raised:
        write_exr(blocker / "shot" / "out.0001.exr", {"depth.Z": np.zeros((2, 2), np.float32)})
    assert raised.value.exit_code == ExitCode.OUTPUT_NOT_WRITABLE
    assert str(blocker) in str(raised.value)


def test_failed_rename_leaves_no_temporary_file(tmp_path):
    (tmp_path / "out.exr").mkdir()  # the destination is a folder: the final rename fails
    with pytest.raises(OutputNotWritableError, match="out.exr"):
        write_exr(tmp_path / "out.exr", {"depth.Z": np.ones((8, 8), np.float32)})
    assert [p.name for p in tmp_path.iterdir()] == ["out.exr"]


def test_failed_write_keeps_the_existing_file_and_leaves_no_temporary(tmp_path):
    """A write that runs out of space half-way (file size limit, as on a full disk) leaves the
    previous good frame untouched and no temporary file behind."""
    target = tmp_path / "depth.0001.exr"
    write_exr(target, {"depth.Z": np.full((4, 4), 3.0, np.float32)})
    good = target.read_bytes()
    program = textwrap.dedent(
        f"""
        import resource, signal, numpy as np
        from bufferany_core.errors import BufferanyError
        from bufferany_core.frames import write_exr
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # let write() fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (16384, 16384))
        noise = np.random.default_rng(0).random((256, 256), dtype=np.float32)  # ~256 KB, incompressible
        try:
            write_exr({str(target)!r}, {{"depth.Z": noise}})
        except BufferanyError as error:
            print(error)
            raise SystemExit(error.exit_code)
        """
    )
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert result.returncode == ExitCode.OUTPUT_NOT_WRITABLE, result.stderr
    assert str(target) in result.stdout
    assert [p.name for p in tmp_path.iterdir()] == [target.name]
    assert target.read_bytes() == good


def test_written_file_is_readable_by_others(tmp_path):
    write_exr(tmp_path / "o.exr", {"depth.Z": np.zeros((2, 2), np.float32)})
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "o.exr").stat().st_mode & 0o777 == 0o666 & ~umask


def test_truncated_exr_names_the_file(tmp_path):
    good = write_image(tmp_path / "good.exr", random_pixels(64, 64, 3), fmt="float")
    truncated = tmp_path / "shot.1001.exr"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(UnreadableImageError) as raised:
        read_rgb(truncated)
    assert str(truncated) in str(raised.value)
    assert raised.value.exit_code == ExitCode.UNREADABLE_IMAGE


def test_garbage_file_names_the_file(tmp_path):
    junk = tmp_path / "shot.1001.exr"
    junk.write_bytes(b"not an exr at all")
    for read in (read_info, read_rgb):
        with pytest.raises(UnreadableImageError, match="shot.1001.exr"):
            read(junk)


def test_missing_file(tmp_path):
    with pytest.raises(InputNotFoundError, match="nope.exr"):
        read_info(tmp_path / "nope.exr")


def test_read_rgb_forms(tmp_path):
    rgba = random_pixels(3, 4, 4)
    rgb, info = read_rgb(write_image(tmp_path / "rgba.exr", rgba, ("R", "G", "B", "A"), fmt="float"))
    np.testing.assert_array_equal(rgb, rgba[:, :, :3])
    assert info.is_float
    grey = random_pixels(3, 4, 1)
    rgb, _ = read_rgb(write_image(tmp_path / "grey.exr", grey, ("Y",), fmt="float"))
    np.testing.assert_array_equal(rgb, np.repeat(grey, 3, axis=2))
    eight_bit = np.array([[[0, 128, 255]]], dtype=np.uint8)
    rgb, info = read_rgb(write_image(tmp_path / "c.png", eight_bit, fmt="uint8"))
    np.testing.assert_allclose(rgb, eight_bit / 255.0, atol=1e-6)
    assert not info.is_float
    with pytest.raises(UnreadableImageError, match=r"no R, G, B or Y channels .*N\.X, N\.Y, depth\.Z"):
        read_rgb(write_image(tmp_path / "data.exr", random_pixels(2, 2, 3), ("depth.Z", "N.X", "N.Y")))


def test_camera_metadata_from_a_jpeg_plate(tmp_path):
    spec = oiio.ImageSpec(16, 8, 3, "uint8")
    spec.attribute("Make", "ARRI")
    spec.attribute("Exif:ISOSpeedRatings", 800)  # a uint16 in Exif; EXR headers want 32-bit ints
    output = oiio.ImageOutput.create("plate.jpg")
    assert output.open(str(tmp_path / "plate.jpg"), spec)
    output.write_image(np.full((8, 16, 3), 100, np.uint8))
    output.close()
    info = read_info(tmp_path / "plate.jpg")
    assert not info.is_float
    write_exr(tmp_path / "out.exr", {"depth.Z": np.zeros((8, 16), np.float32)}, like=info)
    written = read_info(tmp_path / "out.exr").metadata
    assert written["Make"] == "ARRI"
    assert written["Exif:PhotographicSensitivity"] == 800
