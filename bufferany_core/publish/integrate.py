"""Publish files to `<root>/<name>/v###/` atomically, never touching a version already published.

The files are copied into a hidden temporary folder inside `<root>/<name>/` (same file system), flushed
to disk, then the folder is renamed to the next free `v###`. A rename onto an existing version fails
(POSIX refuses to replace a non-empty folder, Windows any folder), so two publishers racing for the
same number both succeed: the loser takes the next number. Standard library only.
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bufferany_core.errors import BadArgumentsError, OutputNotWritableError

MANIFEST = "publish.json"
_VERSION = re.compile(r"^v(\d{3,})$")
_TAKEN = (errno.EEXIST, errno.ENOTEMPTY, errno.EACCES)  # EACCES: Windows renaming onto an existing folder
_ATTEMPTS = 1000


def published_versions(folder: Path) -> list[int]:
    try:
        names = os.listdir(folder)
    except FileNotFoundError:
        return []
    return sorted(int(match[1]) for name in names if (match := _VERSION.match(name)))


def publish(root: str | Path, name: str, files: Iterable[str | Path], *, manifest: dict[str, Any]) -> Path:
    """Copy `files` (plus `publish.json` holding `manifest` and the version) into the next free
    `<root>/<name>/v###` and return that folder."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise BadArgumentsError(f"publish name {name!r} must be a plain folder name")
    sources = [Path(source) for source in files]
    names: dict[str, Path] = {}
    for source in sources:  # two sources with one name would overwrite each other in the version
        if source.name in names or source.name == MANIFEST:
            other = names.get(source.name, MANIFEST)
            raise BadArgumentsError(
                f"cannot publish {source} and {other} together: both are named {source.name!r} in {name}"
            )
        names[source.name] = source
    folder = Path(root) / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputNotWritableError(f"cannot create publish folder {folder}: {error.strerror}") from error
    staging = folder / f".publishing-{os.getpid()}-{secrets.token_hex(4)}"
    try:
        staging.mkdir()
        for source in sources:
            target = staging / source.name
            shutil.copy2(source, target)
            _fsync(target)
        return _rename_to_next_version(folder, staging, manifest)
    except OSError as error:
        raise OutputNotWritableError(f"cannot publish {name} into {folder}: {error}") from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # gone already after a successful rename


def _rename_to_next_version(folder: Path, staging: Path, manifest: dict[str, Any]) -> Path:
    for _ in range(_ATTEMPTS):
        existing = published_versions(folder)
        version = (existing[-1] if existing else 0) + 1
        target = folder / f"v{version:03d}"
        # The manifest names its version, so it is rewritten for each number tried.
        (staging / MANIFEST).write_text(
            json.dumps({**manifest, "version": version}, indent=1, sort_keys=True)
        )
        _fsync(staging / MANIFEST)
        if target.exists():  # rename would replace an empty folder someone made by hand
            continue
        try:
            os.rename(staging, target)
        except OSError as error:
            if error.errno in _TAKEN:
                continue
            raise
        return target
    raise OutputNotWritableError(f"no free version folder under {folder} after {_ATTEMPTS} attempts")


def _fsync(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
