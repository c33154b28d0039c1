"""pyblish validators on real EXR shots: a clean shot passes every one; each planted defect fails
exactly the validator that owns it, with a message naming the file, frame and channel."""

from __future__ import annotations

import numpy as np
import pytest
from pyblish_support import (
    FRAMES,
    discover_plugins,
    errors,
    make_shot,
    passes_file,
    provenance,
    publish,
    recompress,
    reset_pyblish,
    rewrite,
)

from bufferany_core.conventions import HEADER

VALIDATORS = {
    "ValidateBufferanyFrames",
    "ValidateBufferanyChannels",
    "ValidateBufferanyCompression",
    "ValidateBufferanyProvenance",
    "ValidateBufferanyMatchesPlate",
    "ValidateBufferanyFinite",
    "ValidateBufferanyUnitNormals",
    "ValidateBufferanyFlicker",
}


@pytest.fixture
def plugins():
    yield discover_plugins()
    reset_pyblish()


def test_plugin_path_holds_every_stage(plugins):
    names = {plugin.__name__ for plugin in plugins}
    assert VALIDATORS <= names
    assert {"CollectBufferanyFolder", "ExtractBufferanyMissingPasses", "IntegrateBufferanyVersion"} <= names
    assert "CollectBufferanyNuke" not in names  # host plugins only where their host is registered


def test_clean_shot_passes_every_validator_and_records_flicker(plugins, tmp_path):
    shot = make_shot(tmp_path / "shot")
    context = publish(plugins, shot, tmp_path / "publish")
    assert errors(context) == {}
    (instance,) = list(context)
    ran = {r["plugin"].__name__ for r in context.data["results"]}
    assert VALIDATORS <= ran
    assert instance.data["frameStart"] == FRAMES[0] and instance.data["frameEnd"] == FRAMES[-1]
    assert instance.data["resolution"] == [40, 24] and instance.data["passes"] == ["depth", "normal"]
    assert instance.data["flickerScores"]["depth"] < 1e-3


def _drop_frames(folder):
    for frame in (1003, 1004, 1007):
        passes_file(folder, frame).unlink()


def _set(name, index, value):
    def change(channels):
        channels[name][index] = value

    return change


def _scale_normals(channels):
    for name in ("N.X", "N.Y", "N.Z"):
        channels[name][:3] *= 1.5


def _flicker(folder):
    for frame in FRAMES[1::2]:
        rewrite(passes_file(folder, frame), change=lambda c: c.__setitem__("depth.Z", c["depth.Z"] * 1.05))


DEFECTS = {
    "missing frames": (
        _drop_frames,
        "ValidateBufferanyFrames",
        ["3 of 8 frame(s)", "shot_buffers.####.exr", "1003-1004,1007"],
    ),
    "missing channel": (
        lambda f: rewrite(passes_file(f, 1005), drop=["N.Z"]),
        "ValidateBufferanyChannels",
        ["shot_buffers.1005.exr (frame 1005)", "channel N.Z missing"],
    ),
    "half depth": (
        lambda f: rewrite(passes_file(f, 1002), half=["depth.Z", "N.X", "N.Y", "N.Z"]),
        "ValidateBufferanyChannels",
        ["shot_buffers.1002.exr (frame 1002)", "channel depth.Z is half, expected float"],
    ),
    "NaN": (
        lambda f: rewrite(passes_file(f, 1006), change=_set("depth.Z", (5, 7), np.nan)),
        "ValidateBufferanyFinite",
        [
            "shot_buffers.1006.exr (frame 1006)",
            "channel depth.Z has 1 non-finite pixel(s) (1 NaN, 0 Inf)",
            "x=7, y=5",
        ],
    ),
    "Inf": (
        lambda f: rewrite(passes_file(f, 1001), change=_set("N.Y", (0, 3), np.inf)),
        "ValidateBufferanyFinite",
        ["shot_buffers.1001.exr (frame 1001)", "channel N.Y", "(0 NaN, 1 Inf)"],
    ),
    "non-unit normals": (
        lambda f: rewrite(passes_file(f, 1004), change=_scale_normals),
        "ValidateBufferanyUnitNormals",
        ["shot_buffers.1004.exr (frame 1004)", "120 pixel(s) of N.X/N.Y/N.Z are not unit length"],
    ),
    "wrong resolution": (
        lambda f: rewrite(
            passes_file(f, 1003),
            change=lambda c: c.update({k: v[:, :32] for k, v in c.items()}),
            like_changes={"width": 32, "data_window": (0, 0, 32, 24)},
        ),
        "ValidateBufferanyMatchesPlate",
        [
            "shot_buffers.1003.exr (frame 1003)",
            "data window 32x24 at (0, 0) differs from the plate's 40x24",
            "shot.1003.exr",
        ],
    ),
    "pixel aspect": (
        lambda f: rewrite(passes_file(f, 1008), like_changes={"pixel_aspect": 2.0}),
        "ValidateBufferanyMatchesPlate",
        ["shot_buffers.1008.exr (frame 1008)", "pixel aspect 2 differs from the plate's 1"],
    ),
    "lossy compression": (
        lambda f: recompress(passes_file(f, 1007), "dwaa"),
        "ValidateBufferanyCompression",
        ["shot_buffers.1007.exr (frame 1007)", "compression dwaa", "is not lossless"],
    ),
    "no provenance": (
        lambda f: rewrite(passes_file(f, 1002), metadata={}),
        "ValidateBufferanyProvenance",
        ["shot_buffers.1002.exr (frame 1002)", f"provenance header {HEADER.version}", HEADER.untrained],
    ),
    "untrained": (
        lambda f: [rewrite(passes_file(f, n), metadata=provenance(untrained=True)) for n in FRAMES],
        "ValidateBufferanyProvenance",
        [
            "shot_buffers.1001.exr ... shot_buffers.1008.exr (frames 1001-1008): rendered with UNTRAINED",
            "allowUntrained",
            "8 problem(s)",
        ],
    ),
    "flicker": (
        _flicker,
        "ValidateBufferanyFlicker",
        [
            "depth (depth.Z): flicker score",
            "> threshold 0.05",
            "shot_buffers.####.exr",
            "worst frames: frame 10",
        ],
    ),
}


@pytest.mark.parametrize("defect", list(DEFECTS))
def test_each_defect_fails_its_own_validator_and_nothing_is_published(plugins, tmp_path, defect):
    plant, validator, fragments = DEFECTS[defect]
    shot = make_shot(tmp_path / "shot")
    plant(shot)
    context = publish(plugins, shot, tmp_path / "publish")
    failed = errors(context)
    assert set(failed) == {validator}, failed
    for fragment in fragments:
        assert fragment in failed[validator], (fragment, failed[validator])
    assert not (tmp_path / "publish").exists()


def test_untrained_output_publishes_when_allowed(plugins, tmp_path):
    shot = make_shot(tmp_path / "shot")
    for frame in FRAMES:
        rewrite(passes_file(shot, frame), metadata=provenance(untrained=True))
    context = publish(plugins, shot, tmp_path / "publish", allowUntrained=True)
    assert errors(context) == {}
    assert (tmp_path / "publish" / "shot" / "v001" / "shot_buffers.1001.exr").is_file()


def test_thresholds_are_settings(plugins, tmp_path):
    shot = make_shot(tmp_path / "shot")
    _flicker(shot)
    rewrite(passes_file(shot, 1004), change=lambda c: c.__setitem__("N.Z", c["N.Z"] * 1.004))
    assert set(errors(publish(plugins, shot, flickerThreshold={"depth": 5.0}, normalTolerance=0.001))) == {
        "ValidateBufferanyUnitNormals"
    }
    assert errors(publish(plugins, shot, tmp_path / "publish", flickerThreshold=5.0)) == {}
