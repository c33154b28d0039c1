"""Publishing: a clean shot goes to v001, the next publish to v002 without touching v001, racing
publishers get distinct complete versions, and a failed copy leaves nothing behind."""

from __future__ import annotations

import json
import os
import threading

import pytest
from pyblish_support import FRAMES, discover_plugins, errors, make_shot, passes_file, publish, reset_pyblish

from bufferany_core.errors import OutputNotWritableError
from bufferany_core.publish import integrate


@pytest.fixture
def plugins():
    yield discover_plugins()
    reset_pyblish()


def test_clean_shot_publishes_v001_then_v002(plugins, tmp_path):
    shot = make_shot(tmp_path / "shot")
    root = tmp_path / "publish"
    first = publish(plugins, shot, root)
    assert errors(first) == {}
    (instance,) = list(first)
    v001 = root / "shot" / "v001"
    assert instance.data["published"] == {
        "version": 1,
        "folder": str(v001),
        "pattern": str(v001 / "shot_buffers.####.exr"),
    }
    names = sorted(p.name for p in v001.iterdir())
    assert names == sorted([f"shot_buffers.{n}.exr" for n in FRAMES] + ["publish.json"])
    assert (v001 / "shot_buffers.1004.exr").read_bytes() == passes_file(shot, 1004).read_bytes()
    manifest = json.loads((v001 / "publish.json").read_text())
    assert manifest["version"] == 1 and manifest["frames"] == [FRAMES[0], FRAMES[-1]]
    assert manifest["passes"] == ["depth", "normal"] and manifest["plate"] == str(shot / "shot.####.exr")
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in v001.iterdir()}

    second = publish(plugins, shot, root)
    assert errors(second) == {}
    assert list(second)[0].data["published"]["version"] == 2
    assert json.loads((root / "shot" / "v002" / "publish.json").read_text())["version"] == 2
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in v001.iterdir()} == before
    assert sorted(os.listdir(root / "shot")) == ["v001", "v002"]  # no staging folder left


def test_publish_without_root_says_what_to_set(plugins, tmp_path):
    context = publish(plugins, make_shot(tmp_path / "shot"))
    assert "set 'publishRoot'" in errors(context)["IntegrateBufferanyVersion"]


def test_racing_publishers_get_distinct_complete_versions(tmp_path):
    sources = []
    for index in range(3):
        path = tmp_path / f"frame.{index}.exr"
        path.write_bytes(os.urandom(200_000))
        sources.append(path)
    start = threading.Barrier(6)
    folders, failures = [], []

    def publisher(number):
        start.wait()
        try:
            folders.append(integrate.publish(tmp_path / "root", "shot", sources, manifest={"who": number}))
        except Exception as error:  # noqa: BLE001  (reported by the assertion below)
            failures.append(error)

    threads = [threading.Thread(target=publisher, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert sorted(f.name for f in folders) == [f"v00{n}" for n in range(1, 7)]
    whos = set()
    for folder in folders:
        for source in sources:
            assert (folder / source.name).read_bytes() == source.read_bytes()
        manifest = json.loads((folder / "publish.json").read_text())
        assert manifest["version"] == int(folder.name[1:])
        whos.add(manifest["who"])
    assert whos == set(range(6))
    assert sorted(os.listdir(tmp_path / "root" / "shot")) == [f"v00{n}" for n in range(1, 7)]


def test_failed_copy_leaves_no_version_and_no_staging(tmp_path):
    good = tmp_path / "a.exr"
    good.write_bytes(b"x" * 100)
    with pytest.raises(OutputNotWritableError, match="cannot publish shot"):
        integrate.publish(tmp_path / "root", "shot", [good, tmp_path / "missing.exr"], manifest={})
    assert os.listdir(tmp_path / "root" / "shot") == []


def test_an_empty_version_folder_made_by_hand_is_never_replaced(tmp_path):
    (tmp_path / "root" / "shot" / "v001").mkdir(parents=True)
    source = tmp_path / "a.exr"
    source.write_bytes(b"data")
    folder = integrate.publish(tmp_path / "root", "shot", [source], manifest={})
    assert folder.name == "v002" and os.listdir(tmp_path / "root" / "shot" / "v001") == []


def test_two_sources_with_one_name_are_refused_before_anything_is_made(tmp_path):
    import pytest

    from bufferany_core.errors import BadArgumentsError
    from bufferany_core.publish.integrate import publish

    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder / "frame.0001.exr").write_text(folder)
    with pytest.raises(BadArgumentsError, match="both are named 'frame.0001.exr'"):
        publish(tmp_path / "root", "sh010", [tmp_path / "a" / "frame.0001.exr", tmp_path / "b" / "frame.0001.exr"],
                manifest={})
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "publish.json").write_text("{}")
    with pytest.raises(BadArgumentsError, match="named 'publish.json'"):
        publish(tmp_path / "root", "sh010", [tmp_path / "c" / "publish.json"], manifest={})
    assert not (tmp_path / "root").exists()
