"""Helpers for the add-on tests: enabling it from the checkout, scenes, compositor renders, a real
`bufferany-server` from the main environment, and EXR channels read there (OpenImageIO lives in the
main environment, not in Blender's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import bpy
import pytest

REPO = Path(__file__).resolve().parents[2]
MAIN_BIN = REPO / ".venv" / "bin"
ADDON = "blender_addon"
PLATE = REPO / "examples" / "sample_shot" / "plate"
GT = REPO / "examples" / "sample_shot" / "gt"
WIDTH, HEIGHT = 192, 112  # the sample shot's size
TINY_MODELS = {
    "depth_model": "video-depth-anything-tiny",
    "normal_model": "buffer-anytime-normal-tiny",
    "weights": "random",
}

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from blender_addon import compat  # noqa: E402  (what differs between Blender versions)


def main_tool(name: str) -> Path:
    path = MAIN_BIN / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run scripts/setup.sh (the project's main environment)")
    return path


def enable_addon():
    import addon_utils

    module = addon_utils.enable(ADDON, default_set=True, handle_error=_raise)
    assert module is not None, "addon_utils.enable returned no module"
    return module


def disable_addon() -> None:
    import addon_utils

    addon_utils.disable(ADDON, default_set=True, handle_error=_raise)


def _raise(exc: BaseException) -> None:
    raise exc


def reset_scene(*, width: int = WIDTH, height: int = HEIGHT) -> bpy.types.Scene:
    """The context scene, reset: no compositor, a camera, Cycles on the CPU at one sample, float EXR
    output. Always the context scene: Blender's compositor reads image sequences at the frame of
    the context scene, whichever scene it renders."""
    scene = bpy.context.scene
    compat.clear_compositor(scene)
    if scene.camera is None:
        camera = bpy.data.objects.new("test camera", bpy.data.cameras.new("test camera"))
        scene.collection.objects.link(camera)
        scene.camera = camera
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 1
    scene.render.resolution_x, scene.render.resolution_y = width, height
    scene.render.resolution_percentage = 100
    scene.render.pixel_aspect_x = scene.render.pixel_aspect_y = 1.0
    scene.view_settings.view_transform = "Standard"
    image = scene.render.image_settings
    compat.set_output_format(image, "OPEN_EXR")
    image.color_mode, image.color_depth = "RGBA", "32"
    return scene


def final_output(scene: bpy.types.Scene) -> bpy.types.NodeSocket:
    """The socket whose image a render saves (compat.final_image_input)."""
    return compat.final_image_input(scene)


def render_socket(scene: bpy.types.Scene, socket: bpy.types.NodeSocket, frame: int, path: Path) -> Path:
    """Render `frame` with `socket` wired to the compositor's output and save it to `path`. Render
    Layers nodes go first: the test needs the compositor's result alone, and rendering the scene
    for them costs minutes on a machine without a GPU."""
    target = final_output(scene)
    tree = socket.id_data
    for node in [n for n in tree.nodes if n.bl_idname == "CompositorNodeRLayers"]:
        tree.nodes.remove(node)
    tree.links.new(socket, target)
    scene.frame_set(frame)
    scene.render.use_compositing = True
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True, scene=scene.name)
    assert path.is_file(), f"the render wrote no {path}"
    return path


def read_channels(path: Path, names: list[str]) -> dict[str, list[float]]:
    """Channels of an EXR as flat float lists, read with OpenImageIO in the main environment."""
    code = (
        "import json, sys, OpenImageIO as oiio\n"
        "buf = oiio.ImageBuf(sys.argv[1]); spec = buf.spec()\n"
        "if buf.has_error: sys.exit(buf.geterror())\n"
        "pixels = buf.get_pixels(oiio.FLOAT)\n"
        "names = list(spec.channelnames)\n"
        "print(json.dumps({n: pixels[..., names.index(n)].ravel().tolist() for n in sys.argv[2:]}))\n"
    )
    result = subprocess.run(
        [str(main_tool("python")), "-c", code, str(path), *names], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def max_difference(a: list[float], b: list[float]) -> float:
    assert len(a) == len(b), (len(a), len(b))
    return max(abs(x - y) for x, y in zip(a, b, strict=True))


def start_server(folder: Path):
    """The main suite's real `bufferany-server` helper (tests/service_support.py), run from the main
    environment: Blender's has no torch."""
    import service_support

    service_support.SERVER_SCRIPT = main_tool("bufferany-server")
    return service_support.ServerProcess(folder, timeout=60.0)


# The add-on's server tests share these as module-scoped fixtures:
#     server = pytest.fixture(scope="module")(serve)
#     addon = pytest.fixture(scope="module")(addon_on_server)
def serve(tmp_path_factory):
    """A real bufferany-server for the module's tests."""
    process = start_server(tmp_path_factory.mktemp("server"))
    yield process
    process.stop()


def addon_on_server(server):
    """The add-on enabled, its preferences pointing at the module's server."""
    module = enable_addon()
    prefs = bpy.context.preferences.addons[module.__name__].preferences
    prefs.discovery_file, prefs.start_server = str(server.discovery), False
    yield module
    disable_addon()
