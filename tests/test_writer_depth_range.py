"""Each written frame records its depth range (`bufferany/depth_range`) for the hosts' preview."""

from __future__ import annotations

import json

import numpy as np
import OpenImageIO as oiio

from bufferany_core import conventions
from bufferany_core.conventions import HEADER
from bufferany_core.frames import read_info
from bufferany_core.pipeline.writer import Provenance, depth_range, write_frame


def _provenance(convention: str) -> Provenance:
    return Provenance(
        passes=("depth",),
        depth_convention=convention,
        models={"depth": "tiny"},
        weights={"depth": "random:0"},
        untrained=True,
        frame_range="1-1",
        shot_range="1-1",
        input_colorspace="srgb_tx",
        stabilized={},
        source="plate.####.exr",
        settings="0" * 16,
    )


def test_depth_range_is_recorded_as_written(tmp_path):
    like_path = str(tmp_path / "like.exr")
    out = oiio.ImageOutput.create(like_path)
    assert out.open(like_path, oiio.ImageSpec(20, 10, 3, "half"))
    out.write_image(np.zeros((10, 20, 3), np.float32))
    out.close()
    like = read_info(like_path)
    depth = np.linspace(0.05, 1.0, 200, dtype=np.float32).reshape(10, 20)
    depth[0, 0] = np.nan  # a NaN never reaches the range
    for convention in conventions.DepthConvention:
        path = tmp_path / f"{convention.value}.exr"
        write_frame(path, like=like, provenance=_provenance(convention.value), depth=depth.copy())
        recorded = json.loads(str(read_info(path).metadata[HEADER.depth_range]))
        written = oiio.ImageInput.open(str(path))
        pixels = written.read_image(0, 0, 0, 1, "float")[..., 0]
        written.close()
        finite = pixels[np.isfinite(pixels)].astype(np.float64)
        assert abs(recorded["p01"] - np.percentile(finite, 1)) < 1e-6
        assert abs(recorded["p99"] - np.percentile(finite, 99)) < 1e-6
        assert (recorded["min"], recorded["max"]) == (finite.min(), finite.max())
    assert depth_range(np.full((2, 2), np.nan, np.float32)) is None
