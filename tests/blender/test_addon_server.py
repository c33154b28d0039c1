"""The add-on end to end: real Blender, a real `bufferany-server` on loopback with tiny random-weight
models, and the compositor reading the generated passes."""

from __future__ import annotations

import json
import os
import shlex
import shutil

import bpy
import pytest
from addon_support import (
    PLATE,
    TINY_MODELS,
    addon_on_server,
    main_tool,
    max_difference,
    read_channels,
    render_socket,
    reset_scene,
    serve,
)

pytestmark = [pytest.mark.blender, pytest.mark.slow]


server = pytest.fixture(scope="module")(serve)
addon = pytest.fixture(scope="module")(addon_on_server)


def _settings(**values):
    settings = bpy.context.scene.bufferany
    for key, value in {**TINY_MODELS, "frame_range": "ALL", "source": "FILE", **values}.items():
        setattr(settings, key, value)
    return settings


def _plate(folder, frames):
    for frame in frames:
        shutil.copy(PLATE / f"shot.{frame}.exr", folder / f"shot.{frame}.exr")
    return folder / f"shot.{frames[0]}.exr"


def test_generate_builds_a_node_group_whose_outputs_are_the_passes(addon, tmp_path):
    scene = reset_scene()
    first = _plate(tmp_path, (1005, 1006, 1007))
    _settings(filepath=str(first), depth_convention="distance")

    assert bpy.ops.bufferany.generate() == {"FINISHED"}

    status = bpy.context.window_manager.bufferany_status
    assert not status.running and status.progress == 100.0 and "1005-1007" in status.message
    outputs = [tmp_path / f"shot_buffers.{frame}.exr" for frame in (1005, 1006, 1007)]
    assert all(path.is_file() for path in outputs)
    group = bpy.data.node_groups[addon.compositor.GROUP_NAME]
    node = group.nodes[addon.compositor.IMAGE_NODE_NAME]
    assert bpy.path.abspath(node.image.filepath) == str(outputs[0])
    assert (node.frame_start, node.frame_duration, node.frame_offset) == (1005, 3, 1004)
    group_node = addon.compositor.add_group_node(scene, group)  # the one generate added

    rendered = {}
    for name, channels in (("Depth", ["R"]), ("Normal", ["R", "G", "B"]), ("Image", ["R", "G", "B"])):
        path = render_socket(scene, group_node.outputs[name], 1006, tmp_path / f"{name}.exr")
        rendered[name] = read_channels(path, channels)
    passes = read_channels(outputs[1], ["depth.Z", "N.X", "N.Y", "N.Z", "R", "G", "B"])
    neighbour = read_channels(outputs[0], ["depth.Z"])
    assert max_difference(rendered["Depth"]["R"], passes["depth.Z"]) < 1e-5
    assert max_difference(rendered["Depth"]["R"], neighbour["depth.Z"]) > 1e-4
    for rendered_channel, channel in zip("RGB", ("N.X", "N.Y", "N.Z"), strict=True):
        # normals are stored as half floats
        assert max_difference(rendered["Normal"][rendered_channel], passes[channel]) < 1e-3
    for channel in "RGB":
        assert max_difference(rendered["Image"][channel], passes[channel]) < 1e-3
    # distance convention: the depth the server wrote grows away from the camera, always positive
    assert min(passes["depth.Z"]) > 0


@pytest.fixture
def prefs(addon):
    """The add-on's preferences, put back after the test."""
    prefs = bpy.context.preferences.addons[addon.__name__].preferences
    names = ("connection", "discovery_file", "start_server", "server_command", "host", "port", "token")
    saved = {name: getattr(prefs, name) for name in names}
    yield prefs
    for name, value in saved.items():
        setattr(prefs, name, value)


def test_a_failing_job_reports_the_servers_message(prefs, server, tmp_path):
    reset_scene()
    info = json.loads(server.discovery.read_text())
    prefs.connection, prefs.host, prefs.port, prefs.token = (
        "ADDRESS",
        info["host"],
        info["port"],
        info["token"],
    )
    _settings(filepath=str(tmp_path / "missing.1001.exr"))
    with pytest.raises(RuntimeError, match=r"missing.*exit code 3"):
        bpy.ops.bufferany.generate()
    assert not bpy.context.window_manager.bufferany_status.running
    assert bpy.ops.bufferany.generate.poll()  # a failure leaves the add-on ready for the next run

    prefs.token = "not-the-token"
    with pytest.raises(RuntimeError, match="server refused the connection"):
        bpy.ops.bufferany.generate()


def test_the_addon_starts_a_server_with_the_command_in_its_preferences(addon, prefs, tmp_path):
    reset_scene()
    discovery = tmp_path / "home" / "server.json"
    prefs.discovery_file, prefs.start_server = str(discovery), True
    prefs.server_command = shlex.join(
        [str(main_tool("bufferany-server")), "--port", "0", "--device", "cpu", "--allow-root", str(tmp_path)]
    )
    _settings(filepath=str(tmp_path / "missing.1001.exr"))
    try:
        with pytest.raises(RuntimeError, match=r"missing.*exit code 3"):
            bpy.ops.bufferany.generate()
        info = json.loads(discovery.read_text())
        if bpy.app.background:  # Blender as a module, or `blender -b` on a farm: the server stops once unused
            with addon.core.client.Client.connect(discovery) as client:
                assert client.status()["idle_exit"] == addon.preferences.BACKGROUND_IDLE_EXIT_S
    finally:
        if discovery.exists():
            with addon.core.client.Client.connect(discovery) as client:
                client.shutdown()
    assert info["host"] == "127.0.0.1" and info["pid"] != os.getpid()


def test_cancel_stops_the_job_on_the_server(addon, tmp_path):
    scene = reset_scene()
    _settings(filepath=str(_plate(tmp_path, (1010, 1011, 1012))), overwrite=True)
    connect = addon.preferences.connect_arguments(addon.preferences.get(bpy.context))
    generation = addon.generation.Generation(scene, connect)
    generation.step()
    generation.cancel()
    while not generation.step():
        pass
    generation.session.join(timeout=30)
    assert generation.outcome == "CANCELLED", generation.report
    assert generation.group is None


def test_the_scene_itself_as_source(addon, tmp_path):
    scene = reset_scene(width=64, height=36)
    scene.frame_start, scene.frame_end, scene.frame_current = 3, 4, 1
    scene.render.filepath = "//user_output/"
    scene.render.image_settings.color_depth = "32"
    _settings(source="SCENE", cache_dir=str(tmp_path / "cache"))

    assert bpy.ops.bufferany.generate() == {"FINISHED"}

    cache = tmp_path / "cache"
    plates = sorted(path.name for path in cache.glob(f"{scene.name}.*.exr"))
    assert plates == [f"{scene.name}.0003.exr", f"{scene.name}.0004.exr"]
    assert sorted(path.name for path in cache.glob("*_buffers.*.exr")) == [
        f"{scene.name}_buffers.0003.exr",
        f"{scene.name}_buffers.0004.exr",
    ]
    node = bpy.data.node_groups[addon.compositor.GROUP_NAME].nodes[addon.compositor.IMAGE_NODE_NAME]
    assert (node.frame_start, node.frame_duration, node.frame_offset) == (3, 2, 2)
    # the scene's own output settings are back as they were
    assert scene.render.filepath == "//user_output/" and scene.render.image_settings.color_depth == "32"
    assert scene.render.use_compositing and scene.frame_current == 1
    plate = read_channels(cache / f"{scene.name}.0003.exr", ["R", "G", "B", "A"])
    assert len(plate["R"]) == 64 * 36 and max(plate["R"]) > 0  # the default scene's cube, rendered
