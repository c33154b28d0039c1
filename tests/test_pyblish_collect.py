"""Collecting from a folder: every plate sequence (never a passes sequence) with its passes beside it,
or the shots a manifest lists; bad manifests say which file and field."""

from __future__ import annotations

import json

import pyblish.api
import pyblish.util
import pytest
from pipeline_plates import write_plate
from pyblish_support import SIZE, discover_plugins, make_shot, reset_pyblish

from bufferany_core.errors import BadArgumentsError, InputNotFoundError
from bufferany_core.publish.folder import shots_in


@pytest.fixture
def plugins():
    yield discover_plugins()
    reset_pyblish()


def test_every_plate_in_the_folder_is_an_instance(plugins, tmp_path, monkeypatch):
    folder = make_shot(tmp_path / "shots")  # shot.####.exr + shot_buffers.####.exr, 1001-1008
    write_plate(folder, range(1, 4), name="bg", size=(20, 10))  # bg.0001.exr ...: no passes yet
    monkeypatch.setenv("BUFFERANY_PUBLISH_FOLDER", str(folder))
    context = pyblish.api.Context()
    pyblish.util.collect(context, plugins=plugins)
    instances = {instance.name: instance.data for instance in context}
    assert set(instances) == {"shot", "bg"}
    bg = instances["bg"]
    assert bg["plate"] == str(folder / "bg.####.exr") and bg["output"] == str(folder / "bg_buffers.####.exr")
    assert (bg["frameStart"], bg["frameEnd"], bg["resolution"]) == (1, 3, [20, 10])
    assert bg["family"] == "bufferany.passes" and bg["passes"] == ["depth", "normal"]
    assert instances["shot"]["resolution"] == list(SIZE)


def test_manifest_lists_shots_with_their_settings(tmp_path):
    write_plate(tmp_path / "plates", range(1001, 1011), size=(20, 10))
    manifest = {
        "defaults": {"render": "cli", "flickerThreshold": 0.1},
        "shots": [
            {"plate": "plates/shot.1001.exr", "frames": "1003-1006", "passes": ["normal"], "name": "sh020"},
            {"plate": "plates/shot.####.exr", "output": "out/sh030.####.exr", "render": "service"},
        ],
    }
    (tmp_path / "bufferany_publish.json").write_text(json.dumps(manifest))
    first, second = shots_in(tmp_path)
    assert first["name"] == "sh020" and (first["frameStart"], first["frameEnd"]) == (1003, 1006)
    assert first["passes"] == ["normal"] and first["render"] == "cli" and first["flickerThreshold"] == 0.1
    assert first["output"] == str(tmp_path / "plates" / "shot_buffers.####.exr")
    assert second["output"] == str(tmp_path / "out" / "sh030.####.exr") and second["render"] == "service"
    assert (second["frameStart"], second["frameEnd"]) == (1001, 1010)


@pytest.mark.parametrize(
    ("manifest", "error", "fragment"),
    [
        ("{not json", BadArgumentsError, "cannot read manifest"),
        (json.dumps({"shots": [{"name": "x"}]}), BadArgumentsError, "each with a 'plate'"),
        (json.dumps({"shots": [{"plate": "nope.####.exr"}]}), InputNotFoundError, "no files match"),
        (
            json.dumps({"shots": [{"plate": "plates/shot.####.exr", "frames": "1001-1009x2"}]}),
            BadArgumentsError,
            "must be one range",
        ),
    ],
)
def test_bad_manifest_names_the_file_and_field(tmp_path, manifest, error, fragment):
    write_plate(tmp_path / "plates", range(1001, 1011), size=(20, 10))
    (tmp_path / "bufferany_publish.json").write_text(manifest)
    with pytest.raises(error, match=fragment) as caught:
        shots_in(tmp_path)
    assert "bufferany_publish.json" in str(caught.value)
