"""The pictures of docs/blender.md, rendered from the sample shot with the add-on's node group (bpy 5.0,
the .venv-blender suite): the compositor tree drawn by Cycles from the real nodes, and a composite
that uses the passes. The passes are the sample shot's exact depth and normals (examples/sample_shot/gt)
with the plate, in the layout the server writes; the tests' tiny random-weight models give noise.

BUFFERANY_WRITE_DOCS_IMAGES=1 writes them into docs/images/ (commit them); otherwise into tmp_path."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import bpy
import numpy as np
import pytest
from addon_support import (
    GT,
    PLATE,
    REPO,
    compat,
    disable_addon,
    enable_addon,
    main_tool,
    render_socket,
    reset_scene,
)

pytestmark = [
    pytest.mark.blender,
    pytest.mark.skipif(compat.legacy_compositor(), reason="pictures use 5.x nodes"),
]

FRAME = 1005


@pytest.fixture
def out_dir(tmp_path):
    if os.environ.get("BUFFERANY_WRITE_DOCS_IMAGES") == "1":
        return REPO / "docs" / "images"
    return tmp_path


def _passes(folder: Path) -> Path:
    """shot_buffers.1004-1006.exr: plate RGBA + depth.Z + N.X/Y/Z, as the server writes with the plate."""
    code = (
        "import sys, OpenImageIO as oiio\n"
        "plate, gt, out = sys.argv[1:4]\n"
        "for f in (1004, 1005, 1006):\n"
        "    buf = oiio.ImageBufAlgo.channel_append(oiio.ImageBuf(f'{plate}/shot.{f}.exr'), oiio.ImageBuf(f'{gt}/shot.{f}.exr'))\n"
        "    buf.specmod().attribute('compression', 'zip')\n"
        "    assert buf.write(f'{out}/shot_buffers.{f}.exr'), buf.geterror()\n"
    )
    done = subprocess.run(
        [str(main_tool("python")), "-c", code, str(PLATE), str(GT), str(folder)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    return folder / "shot_buffers.1004.exr"


def _pixels(path: Path) -> np.ndarray:
    image = bpy.data.images.load(str(path), check_existing=False)
    width, height = image.size
    pixels = np.empty(width * height * 4, dtype=np.float32)
    image.pixels.foreach_get(pixels)
    bpy.data.images.remove(image)
    return pixels.reshape(height, width, 4)


def _save_png(pixels: np.ndarray, path: Path) -> None:
    height, width = pixels.shape[:2]
    image = bpy.data.images.new(path.stem, width, height, alpha=False, float_buffer=False)
    image.pixels.foreach_set(np.clip(pixels, 0.0, 1.0).astype(np.float32).ravel())
    image.filepath_raw, image.file_format = str(path), "PNG"
    image.save()
    bpy.data.images.remove(image)


def _composite_tree(group_node, tree):
    """Depth fog over the plate, lit by the normals: plate * (0.55 + 0.45 N.y) mixed to a haze colour by
    the normalised depth (bigger = farther in these passes). Returns the sockets to picture."""
    nodes, links = tree.nodes, tree.links
    normalize = nodes.new("CompositorNodeNormalize")
    links.new(group_node.outputs["Depth"], normalize.inputs[0])
    separate = nodes.new("ShaderNodeSeparateXYZ") if "ShaderNodeSeparateXYZ" in dir(bpy.types) else None
    light = nodes.new("ShaderNodeMath")
    light.operation = "MULTIPLY_ADD"
    links.new(separate.outputs["Y"] if separate else group_node.outputs["Normal"], light.inputs[0])
    if separate:
        links.new(group_node.outputs["Normal"], separate.inputs[0])
    light.inputs[1].default_value, light.inputs[2].default_value = 0.45, 0.55
    shade = nodes.new("ShaderNodeMix")
    shade.data_type, shade.blend_type = "RGBA", "MULTIPLY"
    shade.inputs["Factor"].default_value = 1.0
    links.new(group_node.outputs["Image"], shade.inputs["A"])
    links.new(light.outputs[0], shade.inputs["B"])
    fog = nodes.new("ShaderNodeMix")
    fog.data_type = "RGBA"
    links.new(normalize.outputs[0], fog.inputs["Factor"])
    links.new(shade.outputs["Result"], fog.inputs["A"])
    fog.inputs["B"].default_value = (0.75, 0.8, 0.9, 1.0)
    shown = nodes.new("ShaderNodeVectorMath")  # normals shown as colours: 0.5 N + 0.5
    shown.operation = "MULTIPLY_ADD"
    links.new(group_node.outputs["Normal"], shown.inputs[0])
    shown.inputs[1].default_value = shown.inputs[2].default_value = (0.5, 0.5, 0.5)
    layout = {
        normalize: (260.0, 300.0, "Depth 0..1"),
        separate: (260.0, 80.0, "Normal XYZ"),
        light: (480.0, 80.0, "Light: 0.55 + 0.45 N.y"),
        shown: (480.0, -150.0, "Normal as colour"),
        shade: (700.0, 200.0, "Plate x Light"),
        fog: (920.0, 300.0, "Depth Fog"),
    }
    for node, (x, y, label) in layout.items():
        if node is not None:
            node.location, node.label = (x, y), label
    return [group_node.outputs["Image"], normalize.outputs[0], shown.outputs[0], fog.outputs["Result"]]


def _draw_tree(tree, path: Path) -> None:
    """The node tree as a picture: each node a panel with its name and sockets, each link a line,
    modelled as flat emissive objects in a new scene and rendered by Cycles from above."""
    scene = bpy.data.scenes.new("node tree picture")
    scene.render.engine, scene.cycles.device, scene.cycles.samples = "CYCLES", "CPU", 4
    scene.view_settings.view_transform = "Standard"
    compat.set_output_format(scene.render.image_settings, "PNG")
    scale = 0.01

    def material(name, colour):
        mat = bpy.data.materials.new(name)
        mat.use_nodes = True
        out = mat.node_tree.nodes["Material Output"]
        emit = mat.node_tree.nodes.new("ShaderNodeEmission")
        emit.inputs["Color"].default_value = (*colour, 1.0)
        mat.node_tree.links.new(emit.outputs[0], out.inputs["Surface"])
        return mat

    panel, header, text_mat, wire = (
        material("panel", (0.16, 0.16, 0.16)),
        material("header", (0.35, 0.22, 0.45)),
        material("text", (0.95, 0.95, 0.95)),
        material("wire", (0.85, 0.75, 0.3)),
    )
    background = bpy.data.worlds.new("bg")
    background.use_nodes = True
    background.node_tree.nodes["Background"].inputs["Color"].default_value = (0.08, 0.08, 0.08, 1.0)
    scene.world = background

    def box(x0, y0, x1, y1, mat, z=0.0):
        mesh = bpy.data.meshes.new("box")
        mesh.from_pydata([(x0, y0, z), (x1, y0, z), (x1, y1, z), (x0, y1, z)], [], [(0, 1, 2, 3)])
        obj = bpy.data.objects.new("box", mesh)
        obj.data.materials.append(mat)
        scene.collection.objects.link(obj)

    def text(body, x, y, size=0.16, align="LEFT"):
        curve = bpy.data.curves.new("text", "FONT")
        curve.body, curve.size, curve.align_x = body, size, align
        obj = bpy.data.objects.new("text", curve)
        obj.location = (x, y, 0.02)
        obj.data.materials.append(text_mat)
        scene.collection.objects.link(obj)

    sockets = {}
    xs, ys = [], []
    for node in tree.nodes:
        width = 1.8
        x, y = node.location.x * scale, node.location.y * scale
        outputs = [s for s in node.outputs if s.enabled and not s.hide]
        inputs = [
            s
            for s in node.inputs
            if s.enabled and not s.hide and (s.is_linked or node.bl_idname == "NodeGroupOutput")
        ]
        rows = max(len(outputs) + len(inputs), 1)
        height = 0.35 + 0.25 * rows
        box(x, y - height, x + width, y, panel)
        box(x, y - 0.3, x + width, y, header, z=0.01)
        label = node.label or (node.node_tree.name if getattr(node, "node_tree", None) else node.name)
        text(label[:22], x + 0.08, y - 0.22, size=0.17)
        row = 1
        for socket in outputs:
            sy = y - 0.3 - 0.25 * row + 0.07
            text(socket.name, x + width - 0.08, sy - 0.05, size=0.14, align="RIGHT")
            sockets[socket.as_pointer()] = (x + width, sy)
            row += 1
        for socket in inputs:
            sy = y - 0.3 - 0.25 * row + 0.07
            text(socket.name, x + 0.08, sy - 0.05, size=0.14)
            sockets[socket.as_pointer()] = (x, sy)
            row += 1
        xs += [x, x + width]
        ys += [y, y - height]
    for link in tree.links:
        start, end = sockets.get(link.from_socket.as_pointer()), sockets.get(link.to_socket.as_pointer())
        if start is None or end is None:
            continue
        steps = 12
        for i in range(steps):  # an S-curve as short segments
            t0, t1 = i / steps, (i + 1) / steps
            p0 = (
                start[0] + (end[0] - start[0]) * t0,
                start[1] + (end[1] - start[1]) * (3 * t0**2 - 2 * t0**3),
            )
            p1 = (
                start[0] + (end[0] - start[0]) * t1,
                start[1] + (end[1] - start[1]) * (3 * t1**2 - 2 * t1**3),
            )
            dx, dy = p1[0] - p0[0], p1[1] - p0[1]
            length = max((dx * dx + dy * dy) ** 0.5, 1e-6)
            nx, ny = -dy / length * 0.025, dx / length * 0.025
            mesh = bpy.data.meshes.new("wire")
            mesh.from_pydata(
                [
                    (p0[0] + nx, p0[1] + ny, 0.005),
                    (p1[0] + nx, p1[1] + ny, 0.005),
                    (p1[0] - nx, p1[1] - ny, 0.005),
                    (p0[0] - nx, p0[1] - ny, 0.005),
                ],
                [],
                [(0, 1, 2, 3)],
            )
            obj = bpy.data.objects.new("wire", mesh)
            obj.data.materials.append(wire)
            scene.collection.objects.link(obj)
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.type = "ORTHO"
    margin = 0.3
    span_x, span_y = max(xs) - min(xs) + 2 * margin, max(ys) - min(ys) + 2 * margin
    camera.data.ortho_scale = max(span_x, span_y)  # the wider side fits the picture
    camera.location = ((max(xs) + min(xs)) / 2, (max(ys) + min(ys)) / 2, 10.0)
    scene.collection.objects.link(camera)
    scene.camera = camera
    scene.render.resolution_x = 720
    scene.render.resolution_y = max(int(720 * span_y / span_x), 100)
    scene.render.resolution_percentage = 100
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    bpy.data.scenes.remove(scene)


def test_docs_pictures_of_the_node_tree_and_a_composite(tmp_path, out_dir):
    addon = enable_addon()
    try:
        compositor = addon.compositor
        out_dir.mkdir(parents=True, exist_ok=True)
        folder = tmp_path / "shot"
        folder.mkdir()
        first = _passes(folder)
        scene = reset_scene()
        group = compositor.build_node_group(compositor.load_sequence(str(first)), 1004, 1006)
        group_node = compositor.add_group_node(scene, group)
        tree = group_node.id_data
        group_node.location = (0.0, 300.0)
        shown = _composite_tree(group_node, tree)
        output = next(n for n in tree.nodes if n.bl_idname == "NodeGroupOutput")
        output.location = (1140.0, 300.0)
        tree.links.new(shown[-1], compat.final_image_input(scene))
        for node in [n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"]:
            tree.nodes.remove(node)

        _draw_tree(tree, out_dir / "blender_node_tree.png")

        panels = []
        for i, socket in enumerate(shown):
            rendered = render_socket(scene, socket, FRAME, tmp_path / f"panel{i}.exr")
            pixels = _pixels(rendered)
            pixels[..., 3] = 1.0
            panels.append(pixels)
        gap = np.ones((panels[0].shape[0], 4, 4), dtype=np.float32)
        strip = np.concatenate([p for panel in panels for p in (panel, gap)][:-1], axis=1)
        srgb = np.where(
            strip <= 0.0031308, strip * 12.92, 1.055 * np.power(np.clip(strip, 0, None), 1 / 2.4) - 0.055
        )
        srgb[..., 3] = 1.0
        _save_png(srgb, out_dir / "blender_composite.png")

        for name in ("blender_node_tree.png", "blender_composite.png"):
            path = out_dir / name
            assert path.is_file() and 1_000 < path.stat().st_size < 300_000, (path, path.stat().st_size)
        composite = panels[-1][..., :3]
        assert np.isfinite(composite).all() and composite.std() > 0.01  # a picture, not a flat colour
    finally:
        disable_addon()
