"""Writing a file so that readers see the old file or the whole new one, never half of one.

The new content goes to a hidden temporary file in the target's folder (same filesystem, so the
final rename is atomic), is flushed to disk, then renamed over the target; on any failure the
temporary file is removed and an existing target is left untouched. Renders that are killed
mid-frame resume from these guarantees. Standard library only.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from bufferany_core.errors import BufferanyError, OutputNotWritableError


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object], *, mode: int = 0o666) -> None:
    """Call `write(temporary)` to fill a file, then move it to `path`.

    The temporary file exists (empty) before `write` runs, created with `mode` less the umask:
    outputs get the permissions any new file would (not a private temporary file's 0600), and a
    secret written with `mode=0o600` is never readable by others. Its name ends in `path`'s
    extension, for writers that pick the format by it (OpenImageIO). Folders are created as needed.
    Raises OutputNotWritableError (an OSError) naming the file when the folder or the file cannot be
    written; project errors raised by `write` pass through unchanged.
    """
    path = Path(path)
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot create folder {folder} for {path.name}: {exc.strerror or exc}") from exc
    temporary = folder / f".{path.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{path.suffix}"
    try:
        os.close(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
        write(temporary)
        descriptor = os.open(temporary, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
        os.replace(temporary, path)
    except BufferanyError:
        raise
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write {path} in folder {folder}: {exc.strerror or exc}") from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
