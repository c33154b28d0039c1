"""The committed sample shot (examples/sample_shot) and Blender-rendered shots, read through the
project's own frame layer (OpenImageIO)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from bufferany_core import conventions
from bufferany_core.errors import InputNotFoundError, MissingFramesError
from bufferany_core.evaluation import metrics
from bufferany_core.evaluation.ground_truth_shot import load_synthetic_shot
from bufferany_core.frames import FrameSequence, read_frames, read_info

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "sample_shot"
BLENDER_PYTHON = REPO / ".venv-blender" / "bin" / "python"


@pytest.fixture(scope="module")
def sample():
    return load_synthetic_shot(SAMPLE)


def test_sample_shot_layout(sample):
    assert sample.frames == list(range(1001, 1041))
    assert sample.depth.shape == (40, 112, 192) and sample.normals.shape == (40, 112, 192, 3)
    info = read_info(SAMPLE / "gt" / "shot.1001.exr")
    assert info.metadata[conventions.HEADER.depth_convention] == "metric_z"
    assert info.metadata[conventions.HEADER.normal_axes] == conventions.NORMAL_AXES
    assert sample.cameras["resolution"] == [192, 112]


def test_sample_plate_reads_as_a_sequence(sample):
    sequence = FrameSequence.from_input(sample.plate_pattern)
    assert sequence.frames == sample.frames
    first = next(read_frames(sequence, sequence.frames[:1]))
    assert first.rgb.shape == (112, 192, 3) and 0.0 <= first.rgb.min() and first.rgb.max() <= 1.0
    assert first.rgb.std() > 0.05  # textured, not blank


def test_sample_ground_truth_is_plausible(sample):
    assert np.all(np.isfinite(sample.depth)) and 0.05 < sample.depth.min() and sample.depth.max() < 25.0
    np.testing.assert_allclose(np.linalg.norm(sample.normals, axis=-1), 1.0, atol=2e-3)  # half floats


def test_sample_normals_agree_with_the_depth_surface(sample):
    """Normals from the cross product of unprojected neighbours match the normal pass (sign and axes
    included) on smooth surfaces."""
    points = metrics.unproject(sample.depth[0], sample.intrinsics)  # (H, W, 3)
    right = points[:-1, 1:] - points[:-1, :-1]
    down = points[1:, :-1] - points[:-1, :-1]
    from_depth = np.cross(down, right)  # down x right points towards the camera
    angles = metrics.angular_error(from_depth, sample.normals[0, :-1, :-1])
    assert np.median(angles) < 2.0
    assert np.mean(angles < 10.0) > 0.9  # the rest: silhouettes, where neighbours straddle surfaces


def test_sample_depth_agrees_with_the_camera_poses(sample):
    """TAE of the ground truth with its own poses (every 8th frame): only the moving object,
    occlusions and pixel rounding count. Pretending the camera stood still makes it much larger."""
    frames = [0, 8, 16, 24]
    depth, poses = sample.depth[frames], sample.camera_to_world[frames]
    exact = metrics.temporal_alignment_error(depth, poses, sample.intrinsics)
    still = metrics.temporal_alignment_error(depth, np.repeat(poses[:1], len(frames), axis=0), sample.intrinsics)
    assert exact < 0.02
    assert still > 2.5 * exact


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(InputNotFoundError, match="cameras.json"):
        load_synthetic_shot(tmp_path)
    shutil.copytree(SAMPLE, tmp_path / "shot")
    (tmp_path / "shot" / "gt" / "shot.1007.exr").unlink()
    with pytest.raises(MissingFramesError, match="1007"):
        load_synthetic_shot(tmp_path / "shot")


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("BUFFERANY_SKIP_BLENDER") == "1", reason="BUFFERANY_SKIP_BLENDER=1")
def test_blender_render_loads_through_the_frame_layer(tmp_path):
    if not BLENDER_PYTHON.is_file():
        pytest.fail(f"{BLENDER_PYTHON} is missing: run scripts/setup.sh")
    command = [str(BLENDER_PYTHON), str(REPO / "scripts" / "blender" / "render_synthetic_shot.py"),
               "--out", str(tmp_path), "--seed", "5", "--frames", "3", "--first-frame", "41",
               "--width", "48", "--height", "32", "--samples", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    shot = load_synthetic_shot(tmp_path)
    assert shot.frames == [41, 42, 43] and shot.depth.shape == (3, 32, 48)
    np.testing.assert_allclose(np.linalg.norm(shot.normals, axis=-1), 1.0, atol=1e-5)  # float normals
    assert json.loads((tmp_path / "cameras.json").read_text())["seed"] == 5
