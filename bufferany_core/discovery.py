"""The discovery file through which clients find a running `bufferany-server` (standard library only).

It holds {"host", "port", "pid", "token", "protocol"} and is readable by the user alone (0600): the
token in it is what lets a client in. Default location ~/.bufferany/server.json, overridden by
$BUFFERANY_SERVER_FILE or an explicit path.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

from bufferany_core.atomic import atomic_write
from bufferany_core.errors import OutputNotWritableError, ServiceError

DISCOVERY_ENV = "BUFFERANY_SERVER_FILE"
KEYS = ("host", "port", "pid", "token", "protocol")


def default_path() -> Path:
    if os.environ.get(DISCOVERY_ENV):
        return Path(os.environ[DISCOVERY_ENV]).expanduser()
    return Path.home() / ".bufferany" / "server.json"


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    return default_path() if path is None else Path(path).expanduser()


def private_problem(info: os.stat_result, what: str, path: Path) -> str | None:
    """Why a file or folder is not the user's own and private (owner, group/other permissions), or None.
    Windows has neither owners by uid nor mode bits: nothing is checked there."""
    if not hasattr(os, "getuid"):
        return None
    if info.st_uid != os.getuid():
        return f"{what} {path} belongs to user id {info.st_uid}, not to you ({os.getuid()})"
    if stat.S_IMODE(info.st_mode) & 0o077:
        return (
            f"{what} {path} has mode {stat.S_IMODE(info.st_mode):04o}: others may reach it; "
            f"it must be private (0700 for the folder, 0600 for the file)"
        )
    return None


def ensure_private_folder(folder: Path) -> None:
    """Create the discovery file's folder with mode 0700, or verify an existing one is a folder of the
    user's own with no access for others. Raises OutputNotWritableError saying what to fix."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = os.stat(folder)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot create the discovery folder {folder}: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(info.st_mode):
        raise OutputNotWritableError(f"the discovery folder {folder} is not a folder")
    problem = private_problem(info, "the discovery folder", folder)
    if problem:
        raise OutputNotWritableError(
            f"{problem}; use a private folder (--discovery PATH or ${DISCOVERY_ENV}) or chmod 700 it"
        )


def write(path: Path, info: dict[str, Any]) -> None:
    """Write atomically with mode 0600 from the start (never briefly world-readable), into a folder
    that is the user's own and private (created 0700, or verified)."""
    ensure_private_folder(path.parent)
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(info), encoding="utf-8"), mode=0o600)


def read(path: Path) -> dict[str, Any] | None:
    """The file's contents, or None if there is no file. Raises ServiceError if it is unusable."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ServiceError(f"cannot read the server discovery file {path} (a symbolic link?): {exc}") from None
    try:
        problem = private_problem(os.fstat(fd), "server discovery file", path)
        if problem:  # a token anyone could have written or read is no credential
            raise ServiceError(f"{problem}; not trusted: delete it and restart the server")
        with os.fdopen(fd, "r", encoding="utf-8", closefd=False) as handle:
            text = handle.read(1 << 16)
    except (OSError, ValueError) as exc:
        raise ServiceError(f"cannot read the server discovery file {path}: {exc}") from None
    finally:
        os.close(fd)
    try:
        info = json.loads(text)
    except ValueError:
        raise ServiceError(
            f"server discovery file {path} is not valid JSON; delete it and restart the server"
        ) from None
    if not isinstance(info, dict) or any(key not in info for key in KEYS):
        raise ServiceError(
            f"server discovery file {path} lacks one of {KEYS}; delete it and restart the server"
        )
    return info


def remove_if_owned(path: Path, pid: int) -> None:
    """Remove the file only if it still names process `pid` (a newer server may have replaced it)."""
    try:
        info = read(path)
    except ServiceError:
        return
    if info is not None and info.get("pid") == pid:
        path.unlink(missing_ok=True)


class ServerLock:
    """An exclusive lock beside the discovery file, held by a server for its whole life.

    A second server for the same discovery file cannot start, even when both start at the same
    moment (two hosts starting one on demand); the OS releases the lock however the holder ends,
    kill -9 included, so a stale lock never blocks a restart. The lock file itself stays.
    """

    def __init__(self, discovery_path: Path):
        self.path = discovery_path.with_name(discovery_path.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Raises OSError (OutputNotWritableError saying why) when the folder is not private or the
        lock file is a symbolic link or someone else's."""
        ensure_private_folder(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        problem = private_problem(os.fstat(fd), "the lock file", self.path)
        if problem:
            os.close(fd)
            raise OutputNotWritableError(problem)
        try:
            if sys.platform == "win32":
                import msvcrt

                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def pid_alive(pid: int) -> bool | None:
    """Whether a process with this id exists; None where that cannot be told cheaply (Windows)."""
    if sys.platform == "win32":  # os.kill(pid, 0) would send CTRL_C_EVENT there
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True
