"""The pyblish Blender collector in real Blender (bpy) with the Buffer Anytime add-on enabled: scenes
that name frames become instances with the add-on's frame range, the plate's size and the paths the
add-on's passes are written to."""

from __future__ import annotations

import shutil

import bpy
import pyblish.api
import pyblish.plugin
import pyblish.util
import pytest
from addon_support import PLATE, REPO, disable_addon, enable_addon

pytestmark = pytest.mark.blender

SAMPLE_SIZE = [192, 112]


def new_scene(name, *, width=64, height=48):
    scene = bpy.data.scenes.new(name)
    scene.render.resolution_x, scene.render.resolution_y = width, height
    return scene


@pytest.fixture
def plugins():
    enable_addon()
    pyblish.api.deregister_all_paths()
    pyblish.api.deregister_all_plugins()
    pyblish.api.deregister_all_hosts()
    pyblish.api.register_host("blender")
    yield pyblish.plugin.discover(paths=[str(REPO / "pyblish_plugins")])
    pyblish.api.deregister_all_hosts()
    disable_addon()


def test_scenes_with_frames_become_instances(plugins, tmp_path):
    plate = tmp_path / "plate"
    plate.mkdir()
    for frame in (1001, 1002, 1003):
        shutil.copy(PLATE / f"shot.{frame}.exr", plate / f"shot.{frame}.exr")
    footage = new_scene("footage")
    footage.bufferany.filepath = str(plate / "shot.1002.exr")
    footage.bufferany.frame_range = "ALL"
    footage.bufferany.use_normal = False
    footage.bufferany.weights = "random:2"
    rendered = new_scene("CG shot", width=64, height=48)
    rendered.render.resolution_percentage = 50
    rendered.frame_start, rendered.frame_end = 5, 9
    rendered.bufferany.source = "SCENE"
    rendered.bufferany.cache_dir = str(tmp_path / "cache")
    offset = new_scene("offset footage")  # plate 1001-1003 on scene frames 1-3
    offset.frame_start, offset.frame_end = 1, 3
    offset.bufferany.filepath, offset.bufferany.frame_offset = str(plate / "shot.1001.exr"), 1000
    untouched = new_scene("untouched")  # names no frames: not collected

    context = pyblish.api.Context()
    pyblish.util.collect(context, plugins=plugins)
    instances = {instance.name: instance.data for instance in context}
    assert {"footage", "CG shot"} <= set(instances) and "untouched" not in instances
    data = instances["footage"]
    assert data["family"] == "bufferany.passes"
    assert data["plate"] == str(plate / "shot.####.exr")
    assert data["output"] == str(plate / "shot_buffers.####.exr")
    assert (data["frameStart"], data["frameEnd"]) == (1001, 1003)
    assert data["passes"] == ["depth"] and data["resolution"] == SAMPLE_SIZE
    assert data["render"] == "service" and data["renderJob"]["weights"] == "random:2"
    assert data["pixelAspect"] == 1.0  # from the plate's EXR header
    assert (instances["offset footage"]["frameStart"], instances["offset footage"]["frameEnd"]) == (
        1001,
        1003,
    )
    cg = instances["CG shot"]
    assert cg["plate"] == str(tmp_path / "cache" / "CG_shot.####.exr")
    assert cg["output"] == str(tmp_path / "cache" / "CG_shot_buffers.####.exr")
    assert (cg["frameStart"], cg["frameEnd"]) == (5, 9)
    assert cg["resolution"] == [32, 24] and cg["pixelAspect"] == 1.0
    for scene in (footage, rendered, offset, untouched):
        bpy.data.scenes.remove(scene)
