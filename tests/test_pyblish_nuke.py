"""The Nuke collector in the fake Nuke: each enabled BufferAnytime node becomes an instance with the
node's frame range, the plate's format, and the node's cache paths and settings."""

from __future__ import annotations

import pyblish.api
import pyblish.util
import pytest
from nuke_support import FIRST, LAST, PIXEL_ASPECT, fresh_script, make_node
from pyblish_support import discover_plugins, errors, reset_pyblish
from service_support import ServerProcess

# isort: split
# (nuke_support has put the fake `nuke` and nuke_plugin/ on sys.path)
import nuke
from bufferany_nuke import cache, settings

from bufferany_core.errors import BadArgumentsError
from bufferany_core.frames import read_info


@pytest.fixture
def script(tmp_path, monkeypatch):
    yield from fresh_script(tmp_path, monkeypatch)


@pytest.fixture
def plugins():
    yield discover_plugins("nuke")
    reset_pyblish()


def collect(plugins):
    context = pyblish.api.Context()
    pyblish.util.collect(context, plugins=plugins)
    return context


def test_each_enabled_node_is_an_instance_with_its_cache_paths(script, plugins):
    first = make_node()
    first["passes"].setValue("depth")
    first["weights"].setValue("random:3")
    first["window"].setValue(8)
    second = make_node()
    second.setInput(0, nuke.toNode("Read1"))
    second["use_input_range"].setValue(False)
    second["first_frame"].setValue(FIRST + 1)
    second["last_frame"].setValue(LAST)
    disabled = make_node()
    disabled["disable"].setValue(True)

    context = collect(plugins)
    instances = {instance.name: instance for instance in context}
    assert set(instances) == {first.fullName(), second.fullName()}
    data = instances[first.fullName()].data
    entry = cache.entry_for(first, settings.read_settings(first))
    assert data["family"] == "bufferany.passes"
    assert data["plate"] == entry.plate_pattern and data["output"] == entry.passes_pattern
    assert (data["frameStart"], data["frameEnd"]) == (FIRST, LAST)
    assert data["passes"] == ["depth"]
    assert data["resolution"] == [40, 24] and data["pixelAspect"] == PIXEL_ASPECT
    assert data["render"] == "nuke" and data["nukeNode"] == first.fullName()
    assert data["renderJob"]["weights"] == "random:3" and data["renderJob"]["window"] == 8
    assert "passes" not in data["renderJob"] and "overlap" not in data["renderJob"]  # the instance's; unset
    other = instances[second.fullName()].data
    assert (other["frameStart"], other["frameEnd"]) == (FIRST + 1, LAST)
    assert other["passes"] == ["depth", "normal"]


def test_a_node_without_input_fails_collection_naming_it(script, plugins):
    node = make_node()
    node.setInput(0, None)
    context = collect(plugins)
    (result,) = [r for r in context.data["results"] if r["error"] is not None]
    assert isinstance(result["error"], BadArgumentsError)
    assert f"{node.fullName()}: no input" in str(result["error"])


def test_nuke_collector_needs_the_nuke_host(script):
    names = {plugin.__name__ for plugin in discover_plugins()}
    reset_pyblish()
    assert "CollectBufferanyNuke" not in names


@pytest.mark.slow
def test_publish_from_nuke_renders_through_the_node_and_publishes(script, plugins, tmp_path, monkeypatch):
    """Collect -> the node's own Generate against a real server -> every validator -> v001."""
    server = ServerProcess(tmp_path, timeout=60)
    monkeypatch.setenv("BUFFERANY_SERVER_FILE", str(server.discovery))
    group = make_node()
    for name, value in {
        "depth_model": "video-depth-anything-tiny",
        "normal_model": "buffer-anytime-normal-tiny",
        "weights": "random",
        "device": "cpu",
        "depth_processing_size": 28,
        "normal_processing_size": 28,
    }.items():
        group[name].setValue(value)
    context = pyblish.api.Context()
    context.data.update(publishRoot=str(tmp_path / "publish"), allowUntrained=True, flickerThreshold=100)
    try:
        pyblish.util.publish(context, plugins=plugins)
    finally:
        server.stop()
    assert errors(context) == {}
    (instance,) = list(context)
    published = instance.data["published"]
    assert published["version"] == 1
    info = read_info(published["pattern"].replace("####", str(LAST)))
    assert info.pixel_aspect == PIXEL_ASPECT and (info.width, info.height) == (40, 24)
    assert group["status"].value().startswith("done: frames")
