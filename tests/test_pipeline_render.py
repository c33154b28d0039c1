"""run_render end to end on tiny random-weight models, real EXR files through OpenImageIO."""

from __future__ import annotations

import numpy as np
import pytest
from pipeline_plates import TINY, write_plate

from bufferany_core import conventions
from bufferany_core.conventions import HEADER
from bufferany_core.errors import CancelledError, OutputConflictError
from bufferany_core.frames import ImageInfo, read_channels, read_info, write_exr
from bufferany_core.jobs import RenderJob
from bufferany_core.pipeline.align import inverse_to_distance
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.render import run_render


@pytest.fixture(scope="module")
def predictors():
    return PredictorCache()  # one load of each tiny model for the whole file


def _overscan_plate(folder, frames):
    """A plate whose data window sits inside a bigger display window, with 2:1 pixels and metadata."""
    like = ImageInfo(
        width=40, height=24, data_window=(4, 2, 40, 24), display_window=(0, 0, 48, 28), pixel_aspect=2.0,
        channels=("R", "G", "B", "A"), channel_formats=("half",) * 4, metadata={"camera": "A001", "lens_mm": 35.0},
    )
    y, x = np.mgrid[0:24, 0:40].astype(np.float32)
    folder.mkdir(parents=True)
    for n in frames:
        rgb = {"R": x / 40 + 0.01 * n, "G": y / 24, "B": np.full_like(x, 0.3), "A": np.full_like(x, 0.5)}
        write_exr(folder / f"plate.{n:04d}.exr", rgb, like=like, half=list(rgb))
    return str(folder / "plate.####.exr")


def test_both_passes_keep_the_plates_geometry_and_say_where_they_came_from(tmp_path, predictors):
    pattern = _overscan_plate(tmp_path / "in", range(11, 19))
    events = []
    result = run_render(RenderJob(input=pattern, include_plate=True, **TINY), on_event=events.append, predictors=predictors)
    assert result.frames_written == list(range(11, 19)) and result.untrained
    assert events[0]["type"] == "started" and events[0]["untrained"] is True
    assert events[0]["output"] == str(tmp_path / "in" / "plate_buffers.%04d.exr")
    done = [e["frame"] for e in events if e["type"] == "frame_done"]
    assert done == list(range(11, 19))
    percents = [e["percent"] for e in events if e["type"] == "progress"]
    assert percents == sorted(percents) and percents[-1] == 100.0

    out = tmp_path / "in" / "plate_buffers.0014.exr"
    info = read_info(out)
    assert info.data_window == (4, 2, 40, 24) and info.display_window == (0, 0, 48, 28) and info.pixel_aspect == 2.0
    formats = dict(zip(info.channels, info.channel_formats, strict=True))
    assert formats[conventions.DEPTH_CHANNEL] == "float"
    assert all(formats[c] == "half" for c in conventions.NORMAL_CHANNELS)
    assert info.metadata["camera"] == "A001" and info.metadata["lens_mm"] == 35.0
    assert info.metadata[HEADER.untrained] == 1
    assert info.metadata[HEADER.passes] == "depth,normal"
    assert info.metadata[HEADER.depth_model] == "video-depth-anything-tiny"
    assert info.metadata[HEADER.normal_model] == "buffer-anytime-normal-tiny"
    assert info.metadata[HEADER.shot_range] == "11-18" and info.metadata[HEADER.depth_convention] == "inverse"
    assert info.metadata[HEADER.normal_axes] == conventions.NORMAL_AXES
    assert info.metadata[HEADER.weights_sha256] == "depth:random;normal:random"
    normals = read_channels(out, conventions.NORMAL_CHANNELS)
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=2e-3)  # half precision
    plate = read_channels(out, conventions.PLATE_CHANNELS)
    np.testing.assert_allclose(plate[..., 3], 0.5)  # the plate's own alpha, not a made-up one
    np.testing.assert_allclose(plate[..., 0], read_channels(tmp_path / "in" / "plate.0014.exr", ["R"])[..., 0])


def test_rerun_skips_finished_frames_and_changed_settings_need_overwrite(tmp_path, predictors):
    pattern = write_plate(tmp_path / "in", range(1, 9))
    job = RenderJob(input=pattern, passes=("depth",), **TINY)
    run_render(job, predictors=predictors)
    first = tmp_path / "in" / "shot_buffers.0003.exr"
    stamp = first.stat().st_mtime_ns
    again = run_render(job, predictors=predictors)
    assert again.frames_written == [] and again.frames_skipped == list(range(1, 9))
    assert first.stat().st_mtime_ns == stamp

    # other settings never replace finished frames silently (issue 18): the run stops, naming the difference
    with pytest.raises(OutputConflictError, match="depth_convention"):
        run_render(RenderJob(input=pattern, passes=("depth",), depth_convention="distance", **TINY), predictors=predictors)
    assert first.stat().st_mtime_ns == stamp
    forced = run_render(RenderJob(input=pattern, passes=("depth",), depth_convention="distance", overwrite=True, **TINY), predictors=predictors)
    assert forced.frames_written == list(range(1, 9))
    assert read_info(first).metadata[HEADER.depth_rule].startswith("distance = 1 / max(inverse + 0.01")


def test_distance_is_the_documented_function_of_inverse_depth(tmp_path, predictors):
    pattern = write_plate(tmp_path / "in", range(1, 7))
    run_render(RenderJob(input=pattern, output=str(tmp_path / "inv.####.exr"), passes=("depth",), **TINY), predictors=predictors)
    run_render(
        RenderJob(input=pattern, output=str(tmp_path / "dist.####.exr"), passes=("depth",), depth_convention="distance", **TINY),
        predictors=predictors,
    )
    inverse = read_channels(tmp_path / "inv.0004.exr", ["depth.Z"])
    distance = read_channels(tmp_path / "dist.0004.exr", ["depth.Z"])
    np.testing.assert_allclose(distance, inverse_to_distance(inverse.astype(np.float64)), rtol=1e-5)
    assert distance.min() > 0


def test_cancel_stops_between_frames_and_keeps_finished_ones(tmp_path, predictors):
    pattern = write_plate(tmp_path / "in", range(1, 13))
    written = []

    def on_event(event):
        if event["type"] == "frame_done":
            written.append(event["frame"])

    with pytest.raises(CancelledError, match="re-run to resume"):
        run_render(RenderJob(input=pattern, passes=("depth",), **TINY), on_event=on_event,
                   should_cancel=lambda: len(written) >= 2, predictors=predictors)
    assert written == [1, 2]
    assert sorted(p.name for p in (tmp_path / "in").glob("shot_buffers*")) == ["shot_buffers.0001.exr", "shot_buffers.0002.exr"]
    resumed = run_render(RenderJob(input=pattern, passes=("depth",), **TINY), predictors=predictors)
    assert resumed.frames_skipped == [1, 2] and resumed.frames_written == list(range(3, 13))


@pytest.mark.slow
def test_real_clip_movie(tmp_path, shared_dir, predictors):
    clip = shared_dir / "data" / "real" / "davis_rollercoaster.mp4"
    out = tmp_path / "out" / "davis_buffers.####.exr"
    result = run_render(
        RenderJob(input=str(clip), output=str(out), frames="1-5", passes=("depth",), **TINY), predictors=predictors
    )
    assert result.frames_written == [1, 2, 3, 4, 5]
    info = read_info(tmp_path / "out" / "davis_buffers.0003.exr")
    assert (info.width, info.height) == (960, 540)
    depth = read_channels(tmp_path / "out" / "davis_buffers.0003.exr", ["depth.Z"])
    assert np.isfinite(depth).all() and depth.std() > 0
    assert info.metadata[HEADER.source] == str(clip)


def test_contact_sheet_shows_plate_depth_and_normals(tmp_path, predictors):
    import cv2

    from bufferany_core.pipeline.contact_sheet import LABEL_HEIGHT, MIN_TILE_WIDTH, make_contact_sheet

    pattern = write_plate(tmp_path / "in", range(1, 7))
    out = str(tmp_path / "out" / "shot_buffers.####.exr")
    run_render(RenderJob(input=pattern, output=out, **TINY), predictors=predictors)
    sheet = make_contact_sheet(out, pattern, tmp_path / "out" / "sheet.png", count=3)
    image = cv2.imread(str(sheet))
    tile_h = 24 * (MIN_TILE_WIDTH // 40)
    assert image.shape[1] == 3 * MIN_TILE_WIDTH  # plate | depth | normals
    assert image.shape[0] == LABEL_HEIGHT + 6 + 3 * (LABEL_HEIGHT + tile_h)  # untrained banner + 3 rows
    assert tuple(image[2, 2]) == (0, 0, 200)  # the banner is red


def test_contact_sheet_command_fails_with_exit_codes_and_leaves_no_file(tmp_path, capsys):
    from bufferany_core.errors import ExitCode
    from bufferany_core.pipeline.contact_sheet import main

    pattern = write_plate(tmp_path / "in", range(1, 4))
    out = str(tmp_path / "out" / "shot_buffers.####.exr")
    assert main([out, "--plate", pattern]) == ExitCode.INPUT_NOT_FOUND
    assert "no rendered frames match" in capsys.readouterr().err
    assert main([out, "--plate", pattern, "--count", "0"]) == ExitCode.BAD_ARGUMENTS
    assert "--count must be at least 1" in capsys.readouterr().err
    sheet = tmp_path / "out" / "sheet.xyz"
    assert main([out, "--plate", pattern, "-o", str(sheet)]) == ExitCode.BAD_ARGUMENTS
    assert f"contact sheet {sheet}: OpenCV cannot write" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_stabilised_chunk_computes_the_stabiliser_window_around_it(tmp_path, predictors):
    pattern = write_plate(tmp_path / "in", range(1, 13))
    stab = dict(passes=("depth", "normal"), stabilize="on", **TINY)
    run_render(RenderJob(input=pattern, output=str(tmp_path / "whole.####.exr"), **stab), predictors=predictors)
    chunk = run_render(
        RenderJob(input=pattern, output=str(tmp_path / "chunk.####.exr"), frames="8-12", shot_range="1-12", **stab),
        predictors=predictors,
    )
    assert chunk.frames_written == [8, 9, 10, 11, 12]  # frames 1-7 (same stabiliser window) computed, unwritten
    assert not (tmp_path / "chunk.0007.exr").exists()
    for n in (8, 12):
        whole = read_channels(tmp_path / f"whole.{n:04d}.exr", ["depth.Z", *conventions.NORMAL_CHANNELS])
        part = read_channels(tmp_path / f"chunk.{n:04d}.exr", ["depth.Z", *conventions.NORMAL_CHANNELS])
        np.testing.assert_array_equal(whole, part)
    info = read_info(tmp_path / "whole.0005.exr")
    assert info.metadata[HEADER.stabilized] == 1
    plain = run_render(RenderJob(input=pattern, output=str(tmp_path / "plain.####.exr"), passes=("depth", "normal"), **TINY),
                       predictors=predictors)
    assert plain.frames_written
    assert not np.array_equal(read_channels(tmp_path / "plain.0005.exr", ["depth.Z"]),
                              read_channels(tmp_path / "whole.0005.exr", ["depth.Z"]))


def test_a_corrupt_frame_mid_shot_is_a_partial_failure_naming_it(tmp_path, predictors):
    from bufferany_core.errors import PartialFailureError, UnreadableImageError

    pattern = write_plate(tmp_path / "in", range(1, 13))
    job = RenderJob(input=pattern, passes=("depth",), **TINY)
    # The shot's first window (frames 1-4, the reference) is read first; frame 11 only by the last windows.
    late = tmp_path / "in" / "shot.0011.exr"
    late.write_bytes(late.read_bytes()[: int(late.stat().st_size * 0.7)])  # header intact, pixels cut
    with pytest.raises(PartialFailureError, match=r"shot\.0011\.exr.*frames 1-8 were written"):
        run_render(job, predictors=predictors)
    assert len(list((tmp_path / "in").glob("shot_buffers.*.exr"))) == 8
    early = tmp_path / "in" / "shot.0002.exr"
    early.write_bytes(early.read_bytes()[: int(early.stat().st_size * 0.7)])
    with pytest.raises(UnreadableImageError, match=r"shot\.0002\.exr"):
        run_render(RenderJob(input=pattern, passes=("depth",), overwrite=True, **TINY), predictors=predictors)
