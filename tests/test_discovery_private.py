"""The discovery file and its lock are trusted only when private: the folder 0700 (created so, or
verified), the file 0600 and the user's own (checked by client and server), the lock not a link."""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
from service_support import server_command

from bufferany_core import discovery
from bufferany_core.client import Client, ServerNotFoundError
from bufferany_core.errors import OutputNotWritableError, ServiceError

INFO = {"host": "127.0.0.1", "port": 1, "pid": 1, "token": "t", "protocol": 1}


def test_a_missing_folder_is_created_private(tmp_path):
    path = tmp_path / "new" / "server.json"
    discovery.write(path, INFO)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert discovery.read(path) == INFO


def test_a_shared_folder_is_refused_by_the_server(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o1777)  # like /tmp
    with pytest.raises(OutputNotWritableError, match="mode 1777: others may reach it"):
        discovery.write(shared / "server.json", INFO)
    with pytest.raises(OutputNotWritableError, match="others may reach it"):
        discovery.ServerLock(shared / "server.json").acquire()
    assert list(shared.iterdir()) == []
    result = subprocess.run(
        [*server_command(), "--discovery", str(shared / "server.json"), "--device", "cpu"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 9 and "others may reach it" in result.stderr


def test_a_readable_or_foreign_file_is_not_trusted_by_the_client(tmp_path):
    path = tmp_path / "server.json"
    discovery.write(path, INFO)
    os.chmod(path, 0o644)
    with pytest.raises(ServiceError, match="mode 0644: others may reach it; .*not trusted"):
        discovery.read(path)
    with pytest.raises(ServerNotFoundError, match="not trusted"):
        Client.connect(path)
    os.chmod(path, 0o600)
    if os.getuid() == 0:  # only root can give a file away
        os.chown(path, 4242, -1)
        with pytest.raises(ServiceError, match="belongs to user id 4242"):
            discovery.read(path)


def test_links_are_not_followed(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text(json.dumps(INFO))
    os.chmod(target, 0o600)
    (tmp_path / "server.json").symlink_to(target)
    with pytest.raises(ServiceError, match="symbolic link"):
        discovery.read(tmp_path / "server.json")
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "other.json.lock").symlink_to(victim)
    with pytest.raises(OSError):
        discovery.ServerLock(tmp_path / "other.json").acquire()
    assert victim.read_text() == "keep"
