"""Allowed roots are a boundary at write time: the server's own --allow-root only, checked when a job
is accepted, again when it starts, and at every write through directory file descriptors that refuse
symbolic links, so a folder swapped for a link after submission cannot lead a frame outside."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pipeline_plates import write_plate
from service_support import ServerProcess

from bufferany_core import atomic
from bufferany_core.atomic import atomic_write, confine_outputs, make_output_folder, writing_outputs
from bufferany_core.client import Client, JobFailedError, RequestRejectedError
from bufferany_core.errors import ExitCode, OutputNotWritableError

TINY = {
    "passes": ["depth"],
    "depth_model": "video-depth-anything-tiny",
    "weights": "random",
    "window": 6,
    "overlap": 2,
    "depth_processing_size": 28,
}


def _fill(text: str):
    return lambda temporary: Path(temporary).write_text(text)


def test_confined_writes_stay_below_the_roots(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    with confine_outputs([root]):
        with writing_outputs():
            atomic_write(root / "a" / "b" / "frame.0001.exr", _fill("inside"))
            with pytest.raises(OutputNotWritableError, match="outside the folders"):
                atomic_write(outside / "new" / "frame.0001.exr", _fill("escaped"))
            with pytest.raises(OutputNotWritableError, match="outside the folders"):
                atomic_write(root / ".." / "outside" / "frame.0001.exr", _fill("escaped"))
        with pytest.raises(OutputNotWritableError, match="outside the folders"):
            make_output_folder(outside / "made")
        atomic_write(outside / "cache.json", _fill("a job's own cache"))  # not marked as an output
    assert (root / "a" / "b" / "frame.0001.exr").read_text() == "inside"
    assert sorted(p.name for p in outside.iterdir()) == ["cache.json"]  # no folder was created
    assert not list((root / "a" / "b").glob(".*tmp*"))
    with confine_outputs([]), writing_outputs(), pytest.raises(OutputNotWritableError, match="--allow-root"):
        atomic_write(root / "x.exr", _fill("no roots, no writes"))


def test_a_link_swapped_in_after_the_check_is_refused_at_the_write(tmp_path, monkeypatch):
    """The race itself: the path resolves inside the root, then a folder becomes a link outside.
    Simulated by a realpath that still reports the old, inside location."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "shot" / "out").mkdir(parents=True)
    outside.mkdir()
    (root / "shot" / "out").rename(root / "shot" / "old")
    (root / "shot" / "out").symlink_to(outside, target_is_directory=True)
    monkeypatch.setattr(atomic.os.path, "realpath", os.path.abspath)  # the check saw no link
    with confine_outputs([str(root)]), writing_outputs():
        with pytest.raises(OutputNotWritableError, match="symbolic link"):
            atomic_write(root / "shot" / "out" / "frame.0001.exr", _fill("escaped"))
        with pytest.raises(OutputNotWritableError, match="symbolic link"):
            make_output_folder(root / "shot" / "out" / "deeper")
    assert list(outside.iterdir()) == []


def test_a_link_at_the_target_name_is_replaced_not_followed(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir(), outside.mkdir()
    victim = outside / "victim.exr"
    victim.write_text("precious")
    (root / "frame.0001.exr").symlink_to(victim)
    with confine_outputs([root]), writing_outputs():
        atomic_write(root / "frame.0001.exr", _fill("new frame"))
    assert victim.read_text() == "precious"
    assert not (root / "frame.0001.exr").is_symlink()
    assert (root / "frame.0001.exr").read_text() == "new frame"


@pytest.fixture(scope="module")
def confined(tmp_path_factory):
    base = tmp_path_factory.mktemp("confined")
    root, outside = base / "root", base / "outside"
    root.mkdir(), outside.mkdir()
    process = ServerProcess(base, allow_roots=[root])
    process.root, process.outside = root, outside
    yield process
    process.stop()


def test_roots_come_from_the_server_not_from_the_request(confined):
    root, outside = confined.root, confined.outside
    inside_plate = write_plate(root / "plates", range(1, 4), name="in")
    outside_plate = write_plate(outside / "plates", range(1, 4), name="out")
    with Client.connect(confined.discovery) as client:
        assert client.status()["allowed_roots"] == [os.path.realpath(root)]
        # An input outside the roots no longer admits outputs beside it ...
        with pytest.raises(RequestRejectedError, match="input .* is outside") as info:
            client.submit({"input": outside_plate, **TINY})
        assert info.value.exit_code == ExitCode.BAD_ARGUMENTS
        # ... and an input of / or /etc/passwd admits nothing.
        for hostile in ("/", "/etc/passwd"):
            with pytest.raises(RequestRejectedError, match="outside"):
                client.submit({"input": hostile, "output": "/etc/x.####.exr", **TINY})
        with pytest.raises(RequestRejectedError, match="outside the folders this server may write to") as info:
            client.submit({"input": inside_plate, "output": str(outside / "made" / "x.####.exr"), **TINY})
        assert info.value.exit_code == ExitCode.OUTPUT_NOT_WRITABLE
        assert client.list_jobs() == []
    assert sorted(p.name for p in outside.iterdir()) == ["plates"]  # nothing created before validation


@pytest.mark.slow
def test_a_folder_swapped_for_a_link_after_submission_gets_no_frame_outside(confined):
    root, outside = confined.root, confined.outside
    plate = write_plate(root / "swap_plates", range(1, 31), name="swap")
    out_dir = root / "renders" / "swap"
    out_dir.mkdir(parents=True)
    target = outside / "stolen"
    target.mkdir()
    with Client.connect(confined.discovery, timeout=30) as client:
        job = client.submit({"input": plate, "output": str(out_dir / "swap.####.exr"), **TINY})
        swapped = False
        with pytest.raises(JobFailedError) as info:
            for event in client.events(job):
                if event["type"] == "frame_done" and not swapped:
                    out_dir.rename(root / "renders" / "moved")  # after the job was accepted and started
                    out_dir.symlink_to(target, target_is_directory=True)
                    swapped = True
                if event["type"] == "failed":
                    raise JobFailedError(event["error"], exit_code=event["exit_code"], job_id=job)
        assert swapped
    assert info.value.exit_code in (ExitCode.OUTPUT_NOT_WRITABLE, ExitCode.PARTIAL_FAILURE)
    assert "outside" in str(info.value) or "symbolic link" in str(info.value)
    assert list(target.iterdir()) == []
    assert list((root / "renders" / "moved").glob("swap.*.exr"))  # the frames before the swap stay


def test_without_allow_root_the_roots_are_the_studio_setting_else_the_working_folder(tmp_path, monkeypatch):
    from bufferany_core.service.cli import ALLOW_ROOTS_ENV, default_roots

    shows, renders = tmp_path / "shows", tmp_path / "renders"
    monkeypatch.setenv(ALLOW_ROOTS_ENV, os.pathsep.join([str(shows), "", str(renders)]))
    assert default_roots() == [os.path.realpath(shows), os.path.realpath(renders)]
    monkeypatch.delenv(ALLOW_ROOTS_ENV)
    monkeypatch.chdir(tmp_path)
    assert default_roots() == [os.path.realpath(tmp_path)]
    monkeypatch.chdir("/")
    assert default_roots() == []  # a daemon's usual working folder would allow everything
