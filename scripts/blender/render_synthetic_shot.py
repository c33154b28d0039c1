"""Render a procedural shot with exact depth, normals and camera poses (Blender Cycles, CPU).

Run with the Blender environment:
    .venv-blender/bin/python scripts/blender/render_synthetic_shot.py --out DIR --seed 0

Writes, per frame N (numbered from --first-frame):
    DIR/plate/shot.NNNN.exr   R, G, B, A    scene-linear Rec.709, half, ZIP
    DIR/gt/shot.NNNN.exr      depth.Z       metric Z-depth (distance to the camera plane), float
                              N.X, N.Y, N.Z camera-space unit normals, x right, y up, z towards the
                                            camera, facing the camera, float
    DIR/cameras.json          per frame camera-to-world matrix, intrinsics, moving objects' matrices

Ground truth is exact per pixel: the pixel filter is shrunk to a point at the pixel centre, so every
sample of a pixel sees the same surface point (the plate is therefore not anti-aliased).
The scene is a closed room, so every pixel hits a surface.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import bpy  # first: it puts bmesh and mathutils on the path

# isort: split
import bmesh
import numpy as np
from mathutils import Vector

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bufferany_core import conventions  # noqa: E402  (stdlib-only; the repository is not installed here)
from bufferany_core.atomic import atomic_write  # noqa: E402

# Blender bundles OpenImageIO's Python module beside its own scripts.
sys.path.append(os.path.join(bpy.utils.resource_path("LOCAL"), "python", "lib", "python3.11", "site-packages"))
import OpenImageIO as oiio  # noqa: E402

VIEW_LAYER = "ViewLayer"
CAMERAS_JSON = "cameras.json"
PLATE_DIR = "plate"
GT_DIR = "gt"
FILE_STEM = "shot"
GT_DEPTH_MEANING = "metric_z"  # value of bufferany/depth_convention in ground-truth files
ROOM_SIZE = (14.0, 14.0, 7.0)


@dataclass(frozen=True)
class ShotSettings:
    seed: int = 0
    frames: int = 24
    first_frame: int = 1001
    width: int = 256
    height: int = 144
    samples: int = 8
    focal_length_mm: float = 30.0
    sensor_width_mm: float = 36.0
    threads: int = 2
    denoise: bool = False  # OpenImageDenoise on the plate only (smaller files); passes stay exact
    normal_precision: conventions.NormalPrecision = conventions.NormalPrecision.FLOAT

    def __post_init__(self):
        for name in ("frames", "width", "height", "samples", "threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.first_frame < 0:
            raise ValueError(f"first_frame must be >= 0, got {self.first_frame}")

    @property
    def last_frame(self) -> int:
        return self.first_frame + self.frames - 1


# --- Scene ------------------------------------------------------------------------------------------
def reset_scene() -> bpy.types.Scene:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    # New keys interpolate linearly: constant-speed moves, no ease in/out.
    bpy.context.preferences.edit.keyframe_new_interpolation_type = "LINEAR"
    return bpy.context.scene


def _mesh_object(name: str, build, *, smooth: bool) -> bpy.types.Object:
    mesh = bpy.data.meshes.new(name)
    bm = bmesh.new()
    build(bm)
    # Cap rims are creases: without sharp edges the rim's vertex normals average the cap in and the
    # smooth sides bend towards it, away from the surface the depth pass sees.
    for edge in bm.edges:
        if any(len(face.verts) > 4 for face in edge.link_faces):
            edge.smooth = False
    bm.to_mesh(mesh)
    bm.free()
    # Smooth shading on curved sides only: an n-gon cap stays flat, as the real surface is.
    mesh.polygons.foreach_set("use_smooth", [smooth and len(p.vertices) <= 4 for p in mesh.polygons])
    obj = bpy.data.objects.new(name, mesh)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _material(name: str, rng: random.Random, texture: str, *, scale: tuple[float, float] = (1.5, 6.0)
              ) -> bpy.types.Material:
    """Principled BSDF whose colour comes from a procedural texture. No bump: the Normal pass must
    stay the geometric (interpolated) normal."""
    mat = bpy.data.materials.new(name)
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = rng.uniform(0.3, 0.9)
    coords = nodes.new("ShaderNodeTexCoord")
    tex = nodes.new(texture)
    links.new(coords.outputs["Object"], tex.inputs["Vector"])
    if "Scale" in tex.inputs:
        tex.inputs["Scale"].default_value = rng.uniform(*scale)
    ramp = nodes.new("ShaderNodeValToRGB")
    for stop in ramp.color_ramp.elements:
        stop.color = (*[rng.uniform(0.05, 0.9) for _ in range(3)], 1.0)
    factor = tex.outputs["Fac"] if "Fac" in tex.outputs else tex.outputs[0]
    links.new(factor, ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    return mat


TEXTURES = ("ShaderNodeTexNoise", "ShaderNodeTexVoronoi", "ShaderNodeTexWave", "ShaderNodeTexChecker",
            "ShaderNodeTexBrick", "ShaderNodeTexMagic")


def build_room(rng: random.Random) -> bpy.types.Object:
    sx, sy, sz = ROOM_SIZE

    def build(bm):
        bmesh.ops.create_cube(bm, size=1.0)
        bmesh.ops.scale(bm, vec=(sx, sy, sz), verts=bm.verts)
        bmesh.ops.translate(bm, vec=(0, 0, sz / 2), verts=bm.verts)
        bmesh.ops.reverse_faces(bm, faces=bm.faces)

    room = _mesh_object("room", build, smooth=False)
    room.data.materials.append(_material("room", rng, "ShaderNodeTexChecker", scale=(0.4, 0.8)))
    return room


def build_props(rng: random.Random, count: int) -> list[bpy.types.Object]:
    """Primitives on the floor around the origin, each with its own procedural texture."""
    shapes = ("sphere", "cube", "cylinder", "cone")
    props = []
    for i in range(count):
        shape = shapes[i % len(shapes)] if i < len(shapes) else rng.choice(shapes)
        size = rng.uniform(0.6, 1.4)

        def build(bm, shape=shape, size=size):
            if shape == "sphere":
                bmesh.ops.create_uvsphere(bm, u_segments=48, v_segments=24, radius=size / 2)
            elif shape == "cube":
                bmesh.ops.create_cube(bm, size=size)
            else:
                # A cone ends in a small cap rather than a point: an apex vertex would average
                # every side's normal and bend the whole smooth side towards the axis.
                top = size / 2 if shape == "cylinder" else size / 40
                bmesh.ops.create_cone(bm, cap_ends=True, segments=40, radius1=size / 2, radius2=top,
                                      depth=size)

        obj = _mesh_object(f"{shape}{i}", build, smooth=shape != "cube")
        angle = 2 * math.pi * i / count + rng.uniform(-0.3, 0.3)
        radius = rng.uniform(1.2, 3.0)
        obj.location = (radius * math.cos(angle), radius * math.sin(angle), size / 2)
        obj.rotation_euler = (0.0, 0.0, rng.uniform(0, math.pi))
        obj.data.materials.append(_material(obj.name, rng, rng.choice(TEXTURES)))
        props.append(obj)
    return props


def animate_mover(obj: bpy.types.Object, rng: random.Random, settings: ShotSettings) -> None:
    """Slide and spin an object across the floor over the shot."""
    start = Vector(obj.location)
    travel = Vector((rng.uniform(-1.5, 1.5), rng.uniform(-1.5, 1.5), 0.0))
    obj.keyframe_insert("location", frame=settings.first_frame)
    obj.keyframe_insert("rotation_euler", frame=settings.first_frame)
    obj.location = start + travel
    obj.rotation_euler.z += rng.uniform(0.5, 1.5)
    obj.keyframe_insert("location", frame=settings.last_frame)
    obj.keyframe_insert("rotation_euler", frame=settings.last_frame)


def build_camera(rng: random.Random, settings: ShotSettings) -> bpy.types.Object:
    """A camera dollying at constant speed between two points round the set, aiming at a drifting
    target (so it both travels and turns)."""
    data = bpy.data.cameras.new("camera")
    data.lens = settings.focal_length_mm
    data.sensor_width = settings.sensor_width_mm
    data.sensor_fit = "HORIZONTAL"
    data.clip_start, data.clip_end = 0.05, 100.0
    cam = bpy.data.objects.new("camera", data)
    bpy.context.scene.collection.objects.link(cam)
    target = bpy.data.objects.new("camera_target", None)
    bpy.context.scene.collection.objects.link(target)
    track = cam.constraints.new("TRACK_TO")
    track.target, track.track_axis, track.up_axis = target, "TRACK_NEGATIVE_Z", "UP_Y"

    heading = rng.uniform(0, 2 * math.pi)
    sweep = rng.uniform(0.25, 0.6) * rng.choice((-1, 1))
    distance, height = rng.uniform(5.0, 6.0), rng.uniform(1.6, 2.8)
    for frame, angle in ((settings.first_frame, heading), (settings.last_frame, heading + sweep)):
        cam.location = (distance * math.cos(angle), distance * math.sin(angle), height)
        cam.keyframe_insert("location", frame=frame)
        target.location = (rng.uniform(-0.5, 0.5), rng.uniform(-0.5, 0.5), rng.uniform(0.3, 0.8))
        target.keyframe_insert("location", frame=frame)
    bpy.context.scene.camera = cam
    return cam


def build_lights(rng: random.Random) -> None:
    for i, (x, y) in enumerate(((-3.0, -3.0), (3.0, 2.0), (0.0, 4.0))):
        data = bpy.data.lights.new(f"light{i}", "POINT")
        data.energy = rng.uniform(150, 300)
        data.shadow_soft_size = 0.5
        light = bpy.data.objects.new(f"light{i}", data)
        light.location = (x, y, ROOM_SIZE[2] - 1.0)
        bpy.context.scene.collection.objects.link(light)


def configure_render(scene: bpy.types.Scene, settings: ShotSettings, raw_pattern: str) -> None:
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = settings.samples
    scene.cycles.use_adaptive_sampling = False
    scene.cycles.use_denoising = settings.denoise
    scene.cycles.denoiser = "OPENIMAGEDENOISE"
    scene.cycles.max_bounces = 3
    scene.cycles.seed = settings.seed
    # Every sample at the pixel centre: depth and normal passes are exact, not filtered mixtures.
    scene.cycles.filter_width = 0.01
    scene.render.threads_mode = "FIXED"
    scene.render.threads = settings.threads
    scene.render.resolution_x, scene.render.resolution_y = settings.width, settings.height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.render.use_motion_blur = False
    scene.render.dither_intensity = 0.0
    scene.frame_start, scene.frame_end = settings.first_frame, settings.last_frame
    view_layer = scene.view_layers[0]
    view_layer.name = VIEW_LAYER
    view_layer.use_pass_z = True
    view_layer.use_pass_normal = True
    scene.render.use_compositing = False
    image = scene.render.image_settings
    image.media_type = "MULTI_LAYER_IMAGE"
    image.file_format = "OPEN_EXR_MULTILAYER"
    image.color_depth = "32"
    image.exr_codec = "ZIP"
    scene.render.filepath = raw_pattern
    scene.render.use_file_extension = True


def build_scene(settings: ShotSettings) -> bpy.types.Scene:
    rng = random.Random(settings.seed)
    scene = reset_scene()
    world = bpy.data.worlds.new("world")
    world.color = (0.0, 0.0, 0.0)
    scene.world = world
    build_room(rng)
    props = build_props(rng, count=rng.randint(4, 6))
    animate_mover(props[rng.randrange(len(props))], rng, settings)
    build_lights(rng)
    build_camera(rng, settings)
    return scene


# --- Cameras -----------------------------------------------------------------------------------------
def intrinsics(settings: ShotSettings) -> dict:
    """Pinhole intrinsics in pixels; pixel (0, 0) is the top-left pixel, its centre at (0.5, 0.5)."""
    fx = settings.focal_length_mm / settings.sensor_width_mm * settings.width
    return {"fx": fx, "fy": fx, "cx": settings.width / 2, "cy": settings.height / 2,
            "K": [[fx, 0.0, settings.width / 2], [0.0, fx, settings.height / 2], [0.0, 0.0, 1.0]]}


def camera_record(scene: bpy.types.Scene, settings: ShotSettings) -> dict:
    movers = [obj for obj in scene.objects if obj.animation_data and obj.type == "MESH"]
    frames, objects = {}, {obj.name: {} for obj in movers}
    for frame in range(settings.first_frame, settings.last_frame + 1):
        scene.frame_set(frame)
        frames[str(frame)] = [list(row) for row in scene.camera.matrix_world]
        for obj in movers:
            objects[obj.name][str(frame)] = [list(row) for row in obj.matrix_world]
    return {
        "seed": settings.seed,
        "first_frame": settings.first_frame,
        "last_frame": settings.last_frame,
        "resolution": [settings.width, settings.height],
        "focal_length_mm": settings.focal_length_mm,
        "sensor_width_mm": settings.sensor_width_mm,
        "intrinsics": intrinsics(settings),
        "camera_axes": "Blender camera: x right, y up, looks down -z (same as the normal convention)",
        "world_axes": "Blender world: z up, metres",
        "depth": "gt depth.Z is metric Z-depth (perpendicular distance to the camera plane); "
                 "inverse depth is 1 / depth.Z",
        "normals": f"gt N.X/N.Y/N.Z camera space, {conventions.NORMAL_AXES}, unit length",
        "camera_to_world": frames,
        "moving_objects_to_world": objects,
    }


# --- Raw render -> project layout -------------------------------------------------------------------
def read_channels(path: Path, width: int, height: int) -> dict[str, np.ndarray]:
    """Every channel of an EXR, all parts (Blender writes one part per pass), by full name."""
    image = oiio.ImageInput.open(str(path))
    if image is None:
        raise RuntimeError(f"Blender's render {path} cannot be read: {oiio.geterror()}")
    channels = {}
    try:
        subimage = 0
        while image.seek_subimage(subimage, 0):
            spec = image.spec()
            pixels = image.read_image(subimage, 0, 0, spec.nchannels, oiio.FLOAT)
            if pixels is None or pixels.shape[:2] != (height, width):
                raise RuntimeError(f"Blender's render {path} part {subimage} is not {width}x{height}")
            channels.update({name: pixels[..., i] for i, name in enumerate(spec.channelnames)})
            subimage += 1
    finally:
        image.close()
    return channels


def camera_normals(world_normals: np.ndarray, camera_to_world: np.ndarray) -> np.ndarray:
    """(H, W, 3) world-space normals -> camera space. Blender's camera axes already are x right, y up,
    z towards the viewer, so only the inverse rotation is needed."""
    rotation = camera_to_world[:3, :3]
    rotation = rotation / np.linalg.norm(rotation, axis=0, keepdims=True)  # drop any object scale
    normals = world_normals @ rotation  # row vectors: n_cam = R^T n_world
    return normals / np.linalg.norm(normals, axis=-1, keepdims=True)


def view_directions(settings: ShotSettings) -> np.ndarray:
    """(H, W, 3) camera-space rays through pixel centres, scaled to z = -1."""
    k = intrinsics(settings)
    u = (np.arange(settings.width) + 0.5 - k["cx"]) / k["fx"]
    v = -(np.arange(settings.height) + 0.5 - k["cy"]) / k["fy"]
    uu, vv = np.meshgrid(u, v)
    return np.stack([uu, vv, -np.ones_like(uu)], axis=-1)


def _write_exr(path: Path, pixels: np.ndarray, channels: tuple[str, ...], formats: tuple, attributes: dict):
    height, width, nchannels = pixels.shape
    spec = oiio.ImageSpec(width, height, nchannels, oiio.FLOAT)
    spec.channelnames = channels
    spec.channelformats = formats
    spec.attribute("compression", conventions.DEFAULT_COMPRESSION)
    for key, value in attributes.items():
        spec.attribute(key, value)

    def write(temporary: Path) -> None:
        out = oiio.ImageOutput.create(str(temporary))
        if out is None or not out.open(str(temporary), spec):
            raise RuntimeError(f"cannot write {path}: {oiio.geterror()}")
        try:
            if not out.write_image(np.ascontiguousarray(pixels, dtype=np.float32)):
                raise RuntimeError(f"cannot write {path}: {out.geterror()}")
        finally:
            out.close()

    atomic_write(path, write)


def convert_frame(raw: dict[str, np.ndarray], camera_to_world: np.ndarray, rays: np.ndarray,
                  frame: int, out: Path, settings: ShotSettings) -> None:
    def channel(pass_name: str, chan: str) -> np.ndarray:
        name = f"{VIEW_LAYER}.{pass_name}.{chan}"
        if name not in raw:
            raise RuntimeError(f"frame {frame}: Blender's render lacks {name} (has {sorted(raw)})")
        return raw[name]

    depth = channel("Depth", "Z")
    if not np.all(np.isfinite(depth)) or depth.max() > 1e3:
        raise RuntimeError(f"frame {frame}: some pixels hit no surface (the room should enclose the camera)")
    world_n = np.stack([channel("Normal", c) for c in "XYZ"], axis=-1)
    normals = camera_normals(world_n, camera_to_world)
    # Face the viewer: a surface seen from behind shows its back side.
    facing = np.sum(normals * rays, axis=-1, keepdims=True) > 0
    normals = np.where(facing, -normals, normals)
    plate = np.stack([channel("Combined", c) for c in "RGBA"], axis=-1)
    name = f"{FILE_STEM}.{frame:0{conventions.OUTPUT_PADDING}d}.exr"
    common = {"FramesPerSecond": "24/1", conventions.HEADER.source: "bufferany synthetic shot (Blender Cycles)",
              conventions.HEADER.frame_range: f"{settings.first_frame}-{settings.last_frame}"}
    _write_exr(out / PLATE_DIR / name, plate, conventions.PLATE_CHANNELS, (oiio.HALF,) * 4, common)
    gt = np.concatenate([depth[..., None], normals], axis=-1)
    gt_attributes = dict(common, **{
        conventions.HEADER.passes: "depth,normal",
        conventions.HEADER.depth_convention: GT_DEPTH_MEANING,
        conventions.HEADER.normal_space: conventions.NormalSpace.CAMERA.value,
        conventions.HEADER.normal_axes: conventions.NORMAL_AXES,
    })
    normal_format = oiio.HALF if settings.normal_precision == conventions.NormalPrecision.HALF else oiio.FLOAT
    _write_exr(out / GT_DIR / name, gt, (conventions.DEPTH_CHANNEL, *conventions.NORMAL_CHANNELS),
               (oiio.FLOAT, *(normal_format,) * 3), gt_attributes)


def render_shot(out: Path, settings: ShotSettings, *, build=build_scene, log=print) -> dict:
    """Build a scene (`build(settings) -> scene`, by default the procedural one for `settings.seed`),
    render it and write the shot under `out`. Returns the camera record (also written to
    cameras.json) with the render time added."""
    out = Path(out)
    for sub in (PLATE_DIR, GT_DIR):
        (out / sub).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".raw_", dir=out) as raw_dir:
        scene = build(settings)
        configure_render(scene, settings, os.path.join(raw_dir, "raw.####"))
        started = time.perf_counter()
        bpy.ops.render.render(animation=True)
        render_s = time.perf_counter() - started
        record = camera_record(scene, settings)
        rays = view_directions(settings)
        for frame in range(settings.first_frame, settings.last_frame + 1):
            raw = read_channels(Path(raw_dir) / f"raw.{frame:04d}.exr", settings.width, settings.height)
            matrix = np.array(record["camera_to_world"][str(frame)])
            convert_frame(raw, matrix, rays, frame, out, settings)
    record["render_seconds"] = round(render_s, 2)
    atomic_write(out / CAMERAS_JSON, lambda temporary: temporary.write_text(json.dumps(record, indent=1)))
    log(f"rendered {settings.frames} frames {settings.width}x{settings.height} at {settings.samples} spp "
        f"({'denoised' if settings.denoise else 'no denoising'}) "
        f"in {render_s:.1f} s -> {out}")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--first-frame", type=int, default=1001)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--height", type=int, default=144)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--denoise", action="store_true", help="denoise the plate (OpenImageDenoise)")
    parser.add_argument("--normal-precision", choices=[p.value for p in conventions.NormalPrecision],
                        default=conventions.NormalPrecision.FLOAT.value)
    args = parser.parse_args(argv)
    try:
        settings = ShotSettings(seed=args.seed, frames=args.frames, first_frame=args.first_frame,
                                width=args.width, height=args.height, samples=args.samples,
                                threads=args.threads, denoise=args.denoise,
                                normal_precision=conventions.NormalPrecision(args.normal_precision))
    except ValueError as error:
        parser.error(str(error))
    render_shot(args.out, settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
