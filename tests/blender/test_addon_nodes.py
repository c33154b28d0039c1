"""The add-on in real Blender: registration, and the "Buffer Anytime" node group on this Blender's
compositor API (scripts/test.sh runs this file with bpy 5.0.1 and with a 4.2 LTS release)."""

from __future__ import annotations

import shutil
import sys

import bpy
import pytest
from addon_support import (
    GT,
    HEIGHT,
    WIDTH,
    compat,
    disable_addon,
    enable_addon,
    max_difference,
    read_channels,
    render_socket,
    reset_scene,
)
from conftest import run_without_heavy_modules

pytestmark = pytest.mark.blender


@pytest.fixture
def addon():
    module = enable_addon()
    yield module
    disable_addon()


def test_register_and_unregister_cleanly():
    for _ in range(2):  # a second cycle fails if the first left anything registered
        module = enable_addon()
        assert bpy.ops.bufferany.generate.poll()
        assert not bpy.ops.bufferany.cancel.poll()  # nothing is running
        assert hasattr(bpy.types.Scene, "bufferany") and hasattr(bpy.types.WindowManager, "bufferany_status")
        assert hasattr(bpy.types, "BUFFERANY_PT_panel")
        assert bpy.context.preferences.addons[module.__name__].preferences.connection == "DISCOVERY"
        disable_addon()
        assert not hasattr(bpy.types.Scene, "bufferany")
        assert not hasattr(bpy.types.WindowManager, "bufferany_status")
        assert not hasattr(bpy.types, "BUFFERANY_PT_panel")
        assert not hasattr(bpy.types, "BUFFERANY_OT_generate")


@pytest.fixture
def gt_sequence(tmp_path):
    """Three ground-truth frames of the sample shot (depth.Z and N.X/Y/Z), numbered 1011-1013."""
    for frame in (1011, 1012, 1013):
        shutil.copy(GT / f"shot.{frame}.exr", tmp_path / f"shot.{frame}.exr")
    return tmp_path


def test_node_group_reads_the_sequence_at_its_own_frame_numbers(addon, gt_sequence, tmp_path):
    compositor = addon.compositor
    scene = reset_scene()
    image = compositor.load_sequence(str(gt_sequence / "shot.1011.exr"))
    group = compositor.build_node_group(image, 1011, 1013)

    assert image.source == "SEQUENCE" and image.colorspace_settings.is_data
    node = group.nodes[compositor.IMAGE_NODE_NAME]
    # Blender's first file is frame 1: files 1011-1013 need start 1011, duration 3, offset 1010
    assert (node.frame_start, node.frame_duration, node.frame_offset) == (1011, 3, 1010)
    outputs = [
        item.name
        for item in group.interface.items_tree
        if item.item_type == "SOCKET" and item.in_out == "OUTPUT"
    ]
    assert outputs == ["Image", "Depth", "Normal"]
    wired = sorted((link.from_socket.name, link.to_socket.name) for link in group.links)
    assert wired == [("N", "Normal"), ("depth", "Depth")]  # no RGBA in these files: Image stays unlinked

    group_node = compositor.add_group_node(scene, group)
    tree = compat.compositor_tree(scene, create=False)
    assert group_node.id_data == tree and group_node.node_tree == group
    # the scene's render still reaches the output, as before the compositor was turned on
    kinds = {n.bl_idname for n in tree.nodes}
    assert "CompositorNodeRLayers" in kinds

    depth = render_socket(scene, group_node.outputs["Depth"], 1012, tmp_path / "depth.exr")
    normal = render_socket(scene, group_node.outputs["Normal"], 1012, tmp_path / "normal.exr")
    rendered = read_channels(depth, ["R"]) | {
        f"N{c}": v for c, v in read_channels(normal, ["R", "G", "B"]).items()
    }
    truth = read_channels(gt_sequence / "shot.1012.exr", ["depth.Z", "N.X", "N.Y", "N.Z"])
    other = read_channels(gt_sequence / "shot.1011.exr", ["depth.Z"])
    assert len(rendered["R"]) == WIDTH * HEIGHT
    assert max_difference(rendered["R"], truth["depth.Z"]) < 1e-5
    assert max_difference(rendered["R"], other["depth.Z"]) > 1e-3  # frame 1012, not its neighbour
    for rendered_channel, channel in (("NR", "N.X"), ("NG", "N.Y"), ("NB", "N.Z")):
        assert max_difference(rendered[rendered_channel], truth[channel]) < 1e-5


def _with_pixel_aspect(folder, aspect, frames):
    """Copies of the ground-truth frames whose header says `aspect` (written with OpenImageIO in the
    main environment)."""
    import subprocess

    from addon_support import main_tool

    code = (
        "import sys, OpenImageIO as oiio\n"
        "for src, dst in zip(sys.argv[2::2], sys.argv[3::2]):\n"
        "    buf = oiio.ImageBuf(src); buf.specmod().attribute('PixelAspectRatio', float(sys.argv[1]))\n"
        "    assert buf.write(dst), buf.geterror()\n"
    )
    pairs = [str(p) for frame in frames for p in (GT / f"shot.{frame}.exr", folder / f"shot.{frame}.exr")]
    done = subprocess.run(
        [str(main_tool("python")), "-c", code, str(aspect), *pairs], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return folder / f"shot.{frames[0]}.exr"


def test_frame_offset_and_pixel_aspect_reach_the_compositor(addon, tmp_path):
    """Plate 1011-1013 on scene frames 11-13 (offset 1000), anamorphic 2:1: the passes keep the plate's
    numbers, show on the scene frames the plate does, and carry the plate's pixel aspect."""
    compositor, sources = addon.compositor, addon.sources
    folder = tmp_path / "anamorphic"
    folder.mkdir()
    first = _with_pixel_aspect(folder, 2.0, (1011, 1012, 1013))
    assert sources.exr_pixel_aspect(str(first)) == 2.0
    assert sources.exr_pixel_aspect(str(GT / "shot.1011.exr")) == 1.0
    assert sources.exr_pixel_aspect(__file__) is None  # not an EXR

    scene = reset_scene()
    group = compositor.build_node_group(compositor.load_sequence(str(first)), 1011, 1013, offset=1000)
    node = group.nodes[compositor.IMAGE_NODE_NAME]
    assert (node.frame_start, node.frame_duration, node.frame_offset) == (11, 3, 1010)
    assert tuple(node.image.display_aspect) == (2.0, 1.0)
    group_node = compositor.add_group_node(scene, group)
    depth = render_socket(scene, group_node.outputs["Depth"], 12, tmp_path / "depth.exr")  # scene frame 12
    rendered = read_channels(depth, ["R"])["R"]
    assert (
        max_difference(rendered, read_channels(first.with_name("shot.1012.exr"), ["depth.Z"])["depth.Z"])
        < 1e-5
    )

    # the job asks for the plate frames under the scene's range
    settings = scene.bufferany
    scene.frame_start, scene.frame_end = 11, 13
    settings.filepath, settings.frame_range, settings.frame_offset = str(first), "SCENE", 1000
    try:
        generation = addon.generation.Generation(scene, {})
        assert generation.job["frames"] == "1011-1013" and generation.frame_offset == 1000
        settings.source = "SCENE"  # a scene render's frames are the scene's own: no offset
        settings.cache_dir = str(tmp_path / "cache")
        assert addon.generation.Generation(scene, {}).job["frames"] == "11-13"
    finally:
        for name in ("filepath", "frame_range", "frame_offset", "source", "cache_dir"):
            settings.property_unset(name)
        scene.frame_start, scene.frame_end = 1, 250


def test_building_again_updates_the_group_and_keeps_the_users_links(addon, gt_sequence):
    compositor = addon.compositor
    scene = reset_scene()
    group = compositor.build_node_group(
        compositor.load_sequence(str(gt_sequence / "shot.1011.exr")), 1011, 1013
    )
    group_node = compositor.add_group_node(scene, group)
    tree = group_node.id_data
    viewer = tree.nodes.new("CompositorNodeViewer")
    tree.links.new(group_node.outputs["Depth"], viewer.inputs[0])
    images = len(bpy.data.images)

    again = compositor.build_node_group(
        compositor.load_sequence(str(gt_sequence / "shot.1011.exr")), 1012, 1013
    )
    assert again == group and len(bpy.data.images) == images  # same group, same image datablock
    node = group.nodes[compositor.IMAGE_NODE_NAME]
    assert (node.frame_start, node.frame_duration, node.frame_offset) == (1012, 2, 1011)
    assert compositor.add_group_node(scene, again) == group_node
    assert [n for n in tree.nodes if n.bl_idname == "CompositorNodeGroup"] == [group_node]
    assert any(link.from_node == group_node and link.to_node == viewer for link in tree.links)
    assert len([g for g in bpy.data.node_groups if g.name.startswith(compositor.GROUP_NAME)]) == 1


def test_frame_path_formats_both_pattern_styles(addon):
    frame_path = addon.core.framepaths.frame_path  # the core's one rule, as the add-on vendors it
    assert frame_path("/x/shot_buffers.%04d.exr", 7) == "/x/shot_buffers.0007.exr"
    assert frame_path("/x/shot_buffers.####.exr", 1001) == "/x/shot_buffers.1001.exr"
    with pytest.raises(ValueError, match="no frame number token"):
        frame_path("/x/shot_buffers.exr", 1)


def test_the_addon_needs_no_numpy_torch_or_openimageio():
    result = run_without_heavy_modules(
        """
        import sys, bpy  # bpy first: it puts addon_utils on the path
        import addon_utils
        addon_utils.enable("blender_addon", default_set=True, handle_error=print)
        heavy = sorted(m for m in ("numpy", "torch", "cv2", "OpenImageIO") if m in sys.modules)
        print("enabled", bpy.ops.bufferany.generate.poll(), heavy)
        """,
        python=sys.executable,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "enabled True []"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"use_depth": False, "use_normal": False}, "choose at least one pass"),
        ({"filepath": ""}, "set 'Frames'"),
        ({"filepath": "//plates/shot.1001.exr"}, "relative to the .blend file: save the file first"),
        ({"source": "SCENE", "cache_dir": "//cache/"}, "'Cache Folder' is relative"),
        ({"frame_range": "CUSTOM", "frame_start": 20, "frame_end": 10}, "frame range 20-10 is empty"),
    ],
)
# Blender itself warns when a `//` path is set while the .blend file is unsaved
@pytest.mark.filterwarnings("ignore:.*does not support blend relative:RuntimeWarning")
def test_bad_settings_are_reported_before_anything_runs(addon, change, message):
    scene = reset_scene()
    settings = scene.bufferany
    for key, value in {"filepath": "/plates/shot.1001.exr", **change}.items():
        setattr(settings, key, value)
    with pytest.raises(RuntimeError, match=message):
        bpy.ops.bufferany.generate()
    assert bpy.ops.bufferany.generate.poll()
    for key in change:
        settings.property_unset(key)
    settings.property_unset("filepath")


def test_a_scene_without_camera_fails_and_keeps_its_render_settings(addon, tmp_path):
    scene = reset_scene()
    camera, scene.camera = scene.camera, None
    scene.render.filepath = "//frames/"
    settings = scene.bufferany
    settings.source, settings.cache_dir = "SCENE", str(tmp_path / "cache")
    try:
        with pytest.raises(RuntimeError, match="has no camera"):
            bpy.ops.bufferany.generate()
    finally:
        scene.camera = camera
        settings.property_unset("source")
        settings.property_unset("cache_dir")
    assert scene.render.filepath == "//frames/" and scene.render.use_compositing
    assert not bpy.context.window_manager.bufferany_status.running


class _Layout:
    """Records what a panel draws: property names, and the sub-panels' own layouts."""

    def __init__(self):
        self.drawn, self.panels = [], {}

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, name
        self.drawn.append(name)

    def row(self, **kwargs):
        return self

    column = row

    def panel(self, idname, **kwargs):
        self.panels[idname] = _Layout()
        return _Layout(), self.panels[idname]

    def label(self, **kwargs):
        pass

    def menu(self, *args, **kwargs):
        pass

    def operator(self, *args, **kwargs):
        pass

    def progress(self, **kwargs):
        pass


def test_the_panel_draws_every_job_setting_and_the_job_carries_them(addon):
    """The job settings are RenderJob's host fields: each one drawn (advanced ones in the collapsed
    Advanced sub-panel), each one's value in the job; an int left one below its minimum is the default."""
    from types import SimpleNamespace

    from bufferany_core.jobs import PASSES, host_fields

    scene = reset_scene()
    settings = scene.bufferany
    layout = _Layout()
    context = SimpleNamespace(scene=scene, window_manager=bpy.context.window_manager)
    addon.ui.BUFFERANY_PT_panel.draw(SimpleNamespace(layout=layout), context)
    advanced = layout.panels["bufferany_advanced"].drawn
    for f, spec in host_fields():
        names = [f"use_{p}" for p in PASSES] if spec.kind == "passes" else [f.name]
        for name in names:
            assert name in (advanced if spec.advanced else layout.drawn), name
    assert "options" not in settings.bl_rna.properties
    window, overlap = (settings.bl_rna.properties[n] for n in ("window", "overlap"))
    assert (window.default, window.hard_min, overlap.default, overlap.hard_min) == (0, 0, -1, -1)
    assert window.description.endswith("0 = the default") and overlap.description.endswith("-1 = the default")

    changes = {
        "filepath": "/plates/shot.1001.exr",
        "window": 8,
        "overlap": 0,
        "precision": "fp32",
        "depth_temporal_weights": "/weights/depth_temporal.safetensors",
        "use_normal": False,
    }
    for name, value in changes.items():
        setattr(settings, name, value)
    try:
        job = addon.generation.Generation(scene, {}).job
    finally:
        for name in changes:
            settings.property_unset(name)
    assert (job["window"], job["overlap"], job["precision"]) == (8, 0, "fp32")
    assert job["depth_temporal_weights"] == "/weights/depth_temporal.safetensors"
    assert list(job["passes"]) == ["depth"] and job["depth_convention"] == "distance"  # Blender's default
    assert "anchors" not in job and "depth_processing_size" not in job  # left at the default


def test_the_settings_cover_the_job_fields_the_issue_names(addon):
    """Schedule, stabilise (auto/on/off), trained temporal weights per pass, precision, the processing
    sizes and the shot range: each a setting, of the field's kind, with the field's choices."""
    from bufferany_core.jobs import RenderJob, host_fields

    properties = bpy.context.scene.bufferany.bl_rna.properties
    fields = {f.name: spec for f, spec in host_fields()}
    for name in (
        "schedule",
        "stabilize",
        "depth_temporal_weights",
        "normal_temporal_weights",
        "precision",
        "depth_processing_size",
        "normal_processing_size",
        "shot_range",
        "depth_model",
        "normal_model",
    ):
        assert name in fields and name in properties, name
        spec, prop = fields[name], properties[name]
        if spec.kind == "choice":
            assert prop.type == "ENUM" and [item.identifier for item in prop.enum_items] == list(spec.choices)
            assert prop.default == RenderJob.__dataclass_fields__[name].default
    assert [item.identifier for item in properties["stabilize"].enum_items] == ["auto", "on", "off"]
    assert [item.identifier for item in properties["schedule"].enum_items] == ["farm", "official"]
    assert properties["depth_temporal_weights"].subtype == "FILE_PATH"
    assert properties["normal_processing_size"].type == "INT"
