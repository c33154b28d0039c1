"""Synthetic ground truth rendered with real Blender (bpy, Cycles on the CPU) against exact answers."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts" / "blender"))

import bpy  # noqa: E402
import render_synthetic_shot as synth  # noqa: E402

pytestmark = pytest.mark.blender

TINY = dict(frames=3, width=64, height=36, samples=2)


def _camera_at(location, rotation=(0.0, 0.0, 0.0)) -> bpy.types.Object:
    """A camera with the shot's lens; Blender cameras at rest look down world -Z."""
    data = bpy.data.cameras.new("camera")
    data.lens, data.sensor_width, data.sensor_fit = 30.0, 36.0, "HORIZONTAL"
    cam = bpy.data.objects.new("camera", data)
    cam.location, cam.rotation_euler = location, rotation
    bpy.context.scene.collection.objects.link(cam)
    bpy.context.scene.camera = cam
    return cam


def _plane(z: float, size: float = 100.0, tilt_x: float = 0.0) -> bpy.types.Object:
    bpy.ops.mesh.primitive_plane_add(size=size, location=(0.0, 0.0, z), rotation=(tilt_x, 0.0, 0.0))
    return bpy.context.active_object


def _light():
    data = bpy.data.lights.new("sun", "SUN")
    sun = bpy.data.objects.new("sun", data)
    bpy.context.scene.collection.objects.link(sun)


def _gt(out: Path, frame: int, settings) -> tuple[np.ndarray, np.ndarray]:
    channels = synth.read_channels(out / "gt" / f"shot.{frame:04d}.exr", settings.width, settings.height)
    normals = np.stack([channels[f"N.{c}"] for c in "XYZ"], axis=-1)
    return channels["depth.Z"], normals


def _rays(settings) -> np.ndarray:
    return synth.view_directions(settings)  # (H, W, 3), z = -1


@pytest.fixture(scope="module")
def receding_plane(tmp_path_factory):
    """A wall facing the camera 5 m away; the camera backs off 0.5 m per frame."""
    settings = synth.ShotSettings(**TINY)

    def build(settings):
        scene = synth.reset_scene()
        _plane(-5.0)
        _light()
        cam = _camera_at((0.0, 0.0, 0.0))
        for frame, z in zip(range(settings.first_frame, settings.last_frame + 1), (0.0, 0.5, 1.0), strict=True):
            cam.location.z = z
            cam.keyframe_insert("location", frame=frame)
        return scene

    out = tmp_path_factory.mktemp("receding")
    record = synth.render_shot(out, settings, build=build)
    return out, settings, record


def test_depth_is_perpendicular_distance_and_normals_face_camera(receding_plane):
    out, settings, _ = receding_plane
    for frame, distance in zip((1001, 1002, 1003), (5.0, 5.5, 6.0), strict=True):
        depth, normals = _gt(out, frame, settings)
        # Z-depth is the same at every pixel of a fronto-parallel wall; the distance along the ray
        # would grow towards the corners (by 1/cos, 17% here).
        np.testing.assert_allclose(depth, distance, rtol=1e-5)
        np.testing.assert_allclose(normals, np.broadcast_to([0.0, 0.0, 1.0], normals.shape), atol=1e-5)


def test_frames_are_numbered_from_first_frame(receding_plane):
    out, _, _ = receding_plane
    names = sorted(p.name for p in (out / "plate").iterdir())
    assert names == ["shot.1001.exr", "shot.1002.exr", "shot.1003.exr"]
    assert sorted(p.name for p in (out / "gt").iterdir()) == names
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_camera_poses_json_matches_the_scene(receding_plane):
    out, settings, _ = receding_plane
    record = json.loads((out / "cameras.json").read_text())
    assert (record["first_frame"], record["last_frame"]) == (1001, 1003)
    assert record["resolution"] == [64, 36]
    for frame, z in zip(("1001", "1002", "1003"), (0.0, 0.5, 1.0), strict=True):
        expected = np.eye(4)
        expected[2, 3] = z
        np.testing.assert_allclose(record["camera_to_world"][frame], expected, atol=1e-6)
    k = record["intrinsics"]
    assert k["fx"] == pytest.approx(30.0 / 36.0 * 64) and (k["cx"], k["cy"]) == (32.0, 18.0)


def test_plate_is_rgba_scene_linear(receding_plane):
    out, settings, _ = receding_plane
    plate = synth.read_channels(out / "plate" / "shot.1001.exr", settings.width, settings.height)
    assert sorted(plate) == ["A", "B", "G", "R"]
    assert np.all(np.isfinite(plate["R"])) and plate["R"].max() > 0.0
    np.testing.assert_allclose(plate["A"], 1.0)


def test_tilted_plane_depth_and_normal(tmp_path):
    """A wall turned 30 degrees about x: the exact ray-plane intersection and a tilted normal."""
    settings = synth.ShotSettings(frames=1, width=64, height=36, samples=1)
    tilt = math.radians(30.0)

    def build(settings):
        scene = synth.reset_scene()
        _plane(-4.0, tilt_x=tilt)
        _light()
        _camera_at((0.0, 0.0, 0.0))
        return scene

    synth.render_shot(tmp_path, settings, build=build)
    depth, normals = _gt(tmp_path, 1001, settings)
    normal = np.array([0.0, -math.sin(tilt), math.cos(tilt)])  # plane's +Z turned about x
    np.testing.assert_allclose(normals, np.broadcast_to(normal, normals.shape), atol=1e-5)
    rays = _rays(settings)
    # Points t * ray on the plane n . (p - (0, 0, -4)) = 0, and the ray's z is -1, so Z-depth = t.
    expected = (normal @ np.array([0.0, 0.0, -4.0])) / (rays @ normal)
    np.testing.assert_allclose(depth, expected, rtol=1e-4)


def test_sphere_normals_are_unit_and_face_the_camera(tmp_path):
    settings = synth.ShotSettings(frames=1, width=64, height=36, samples=1)
    centre = np.array([0.4, 0.2, -4.0])

    def build(settings):
        scene = synth.reset_scene()
        _plane(-8.0)
        bpy.ops.mesh.primitive_uv_sphere_add(segments=64, ring_count=32, radius=1.0, location=tuple(centre))
        bpy.ops.object.shade_smooth()
        _light()
        _camera_at((0.0, 0.0, 0.0))
        return scene

    synth.render_shot(tmp_path, settings, build=build)
    depth, normals = _gt(tmp_path, 1001, settings)
    on_sphere = depth < 7.0
    assert 150 < on_sphere.sum() < 600  # a disc of radius ~13 px
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-5)
    rays = _rays(settings)
    assert np.all(np.sum(normals * rays, axis=-1)[on_sphere] < 0), "a normal points away from the camera"
    # Unproject the depth and compare with the analytic sphere normal.
    points = rays[on_sphere] * depth[on_sphere, None]
    np.testing.assert_allclose(np.linalg.norm(points - centre, axis=-1), 1.0, atol=0.01)
    analytic = (points - centre) / np.linalg.norm(points - centre, axis=-1, keepdims=True)
    angle = np.degrees(np.arccos(np.clip(np.sum(analytic * normals[on_sphere], axis=-1), -1, 1)))
    assert angle.max() < 2.0


def test_procedural_shot_depth_agrees_with_poses_across_frames(tmp_path):
    """Reproject frame 1001's depth with the recorded poses into 1002: static surfaces line up
    (a pose off by one frame gives a median error of 4-7%)."""
    settings = synth.ShotSettings(seed=3, **TINY)
    record = synth.render_shot(tmp_path, settings)
    k = record["intrinsics"]
    a_to_world = np.array(record["camera_to_world"]["1001"])
    b_to_world = np.array(record["camera_to_world"]["1002"])
    assert not np.allclose(a_to_world, b_to_world), "the camera does not move"
    (mover,) = record["moving_objects_to_world"].values()
    assert not np.allclose(mover["1001"], mover["1003"]), "the moving object does not move"

    depth_a, normals_a = _gt(tmp_path, 1001, settings)
    depth_b, _ = _gt(tmp_path, 1002, settings)
    np.testing.assert_allclose(np.linalg.norm(normals_a, axis=-1), 1.0, atol=1e-5)
    points = (_rays(settings) * depth_a[..., None]).reshape(-1, 3)
    world = points @ a_to_world[:3, :3].T + a_to_world[:3, 3]
    in_b = (world - b_to_world[:3, 3]) @ b_to_world[:3, :3]  # (N, 3) camera b coordinates
    z_b = -in_b[:, 2]
    u = np.floor(k["fx"] * in_b[:, 0] / z_b + k["cx"]).astype(int)
    v = np.floor(-k["fy"] * in_b[:, 1] / z_b + k["cy"]).astype(int)
    inside = (u >= 0) & (u < settings.width) & (v >= 0) & (v < settings.height)
    relative = np.abs(depth_b[v[inside], u[inside]] - z_b[inside]) / z_b[inside]
    assert inside.mean() > 0.7
    assert np.median(relative) < 0.015
    assert np.mean(relative < 0.03) > 0.85  # the rest: moving object, occlusions, pixel rounding


def _normals_from_depth(depth: np.ndarray, settings) -> np.ndarray:
    points = _rays(settings) * depth[..., None]
    right = points[:-1, 1:] - points[:-1, :-1]
    down = points[1:, :-1] - points[:-1, :-1]
    normals = np.cross(down, right)  # towards the camera
    return normals / np.linalg.norm(normals, axis=-1, keepdims=True)


def test_seeds_make_different_shots_and_the_same_seed_the_same_ground_truth(tmp_path):
    settings = {seed: synth.ShotSettings(seed=seed, frames=1, width=128, height=72, samples=1) for seed in (4, 5)}
    synth.render_shot(tmp_path / "a", settings[4])
    synth.render_shot(tmp_path / "b", settings[4])
    synth.render_shot(tmp_path / "c", settings[5])
    depth_a, normals_a = _gt(tmp_path / "a", 1001, settings[4])
    depth_b, normals_b = _gt(tmp_path / "b", 1001, settings[4])
    depth_c, _ = _gt(tmp_path / "c", 1001, settings[5])
    np.testing.assert_allclose(depth_a, depth_b, rtol=1e-5)
    np.testing.assert_allclose(normals_a, normals_b, atol=1e-4)
    assert np.mean(np.abs(depth_a - depth_c) > 0.1) > 0.5
    # Normals of the procedural props agree with the surface the depth describes (smooth sides
    # within a facet's half angle; silhouettes, where neighbours straddle surfaces, excepted).
    cosine = np.sum(_normals_from_depth(depth_a, settings[4]) * normals_a[:-1, :-1], axis=-1)
    angles = np.degrees(np.arccos(np.clip(cosine, -1, 1)))
    assert np.median(angles) < 1.0 and np.mean(angles < 10.0) > 0.935  # 0.91 with bent cap rims


def test_settings_reject_nonsense():
    with pytest.raises(ValueError, match="frames"):
        synth.ShotSettings(frames=0)


def test_command_line_renders_a_shot(tmp_path):
    script = REPO / "scripts" / "blender" / "render_synthetic_shot.py"
    command = [sys.executable, str(script), "--out", str(tmp_path), "--seed", "2", "--frames", "2",
               "--first-frame", "7", "--width", "32", "--height", "18", "--samples", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "gt").iterdir()) == ["shot.0007.exr", "shot.0008.exr"]
    bad = subprocess.run(command[:2] + ["--out", str(tmp_path / "x"), "--frames", "0"],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "frames" in bad.stderr
