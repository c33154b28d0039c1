"""Atomic file writes: readers see the old file or the whole new one, outputs get ordinary
permissions, secrets stay private, and a failed write leaves nothing behind."""

from __future__ import annotations

import os
import stat

import pytest

from bufferany_core.atomic import atomic_write
from bufferany_core.errors import NonFiniteError, OutputNotWritableError


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_through_a_temporary_file_in_the_same_folder(tmp_path, umask_022):
    target = tmp_path / "new" / "frame.0001.exr"
    seen = []

    def write(temporary):
        seen.append(temporary)
        assert temporary.parent == target.parent and temporary.name.endswith(".exr")
        assert not target.exists()
        temporary.write_bytes(b"pixels")

    atomic_write(target, write)
    assert target.read_bytes() == b"pixels"
    assert _mode(target) == 0o644  # an output anyone in the studio may read, as the umask says
    assert not seen[0].exists() and sorted(os.listdir(target.parent)) == ["frame.0001.exr"]


def test_a_secret_is_private_from_its_creation(tmp_path, umask_022):
    target = tmp_path / "server.json"
    modes = []
    atomic_write(target, lambda tmp: (modes.append(_mode(tmp)), tmp.write_text("{}")), mode=0o600)
    assert modes == [0o600] and _mode(target) == 0o600


def _fail_half_way(error):
    def write(temporary):
        temporary.write_bytes(b"half")
        raise error

    return write


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    target = tmp_path / "weights.safetensors"
    target.write_bytes(b"old")
    with pytest.raises(OutputNotWritableError, match="No space left") as info:
        atomic_write(target, _fail_half_way(OSError(28, "No space left on device")))
    assert str(target) in str(info.value)
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["weights.safetensors"]


def test_project_errors_from_the_writer_pass_through_unchanged(tmp_path):
    error = NonFiniteError("NaN in frame 3")
    with pytest.raises(NonFiniteError) as info:
        atomic_write(tmp_path / "f.exr", _fail_half_way(error))
    assert info.value is error and os.listdir(tmp_path) == []


def test_a_folder_that_cannot_exist_names_the_file(tmp_path):
    (tmp_path / "plate").write_text("a file, not a folder")
    with pytest.raises(OutputNotWritableError, match="out.exr"):
        atomic_write(tmp_path / "plate" / "out.exr", lambda tmp: tmp.write_bytes(b"x"))
