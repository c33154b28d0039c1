"""Writing a file so that readers see the old file or the whole new one, never half of one.

The new content goes to a hidden temporary file in the target's folder (same filesystem, so the
final rename is atomic), is flushed to disk, then renamed over the target; on any failure the
temporary file is removed and an existing target is left untouched. Renders that are killed
mid-frame resume from these guarantees. Standard library only.

A render service confines a job's outputs to folders it was configured with (`confine_outputs`):
then the writes a job marks as its outputs (`writing_outputs`) and the folders made for them
(`make_output_folder`) are checked at the moment of writing, walking down from an allowed root with
directory file descriptors that refuse symbolic links (`O_NOFOLLOW`), so a folder swapped for a link
after the job was accepted cannot lead a write outside the roots.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from bufferany_core.errors import BufferanyError, DiskFullError, OutputNotWritableError

_confinement = threading.local()  # per thread: .roots (tuple of real paths) and .outputs (nesting depth)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_PINNED_PATHS = os.path.isdir("/proc/self/fd")  # Linux: a folder's fd can be named as a path


@contextlib.contextmanager
def confine_outputs(roots: Sequence[str | os.PathLike[str]]) -> Iterator[None]:
    """While active (in this thread), outputs are written only below one of `roots` (real paths,
    no symbolic links in them), checked at write time; no roots: no output may be written."""
    previous = getattr(_confinement, "roots", None)
    _confinement.roots = tuple(os.path.realpath(os.fspath(root)) for root in roots)
    try:
        yield
    finally:
        _confinement.roots = previous


@contextlib.contextmanager
def writing_outputs() -> Iterator[None]:
    """Marks the atomic writes made inside it as a job's outputs (confined when `confine_outputs`
    is active); the writes a job makes for itself (weight hash caches) stay unconfined."""
    _confinement.outputs = getattr(_confinement, "outputs", 0) + 1
    try:
        yield
    finally:
        _confinement.outputs -= 1


def _roots() -> tuple[str, ...] | None:
    return getattr(_confinement, "roots", None)


def output_roots() -> tuple[str, ...] | None:
    """The roots `confine_outputs` set in this thread (None: unconfined): a thread that writes the
    same job's outputs enters `confine_outputs` with them."""
    return _roots()


def within(path: str, root: str) -> bool:
    """Whether `path` is `root` or below it (both absolute and normalised)."""
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:  # different drives on Windows
        return False


def _open_confined_folder(folder: Path, roots: tuple[str, ...], *, create: bool) -> int:
    """A directory fd for `folder`, reached from an allowed root one component at a time with
    O_NOFOLLOW (missing folders made on the way when `create`). Raises OutputNotWritableError."""
    resolved = os.path.realpath(folder)
    root = next((r for r in sorted(roots, key=len, reverse=True) if within(resolved, r)), None)
    if root is None:
        raise OutputNotWritableError(
            f"output folder {folder} (really {resolved}) is outside the folders this server may write to "
            f"({', '.join(roots) or 'none configured: start the server with --allow-root DIR'})"
        )
    parts = [] if resolved == root else os.path.relpath(resolved, root).split(os.sep)
    try:
        fd = os.open(root, os.O_RDONLY | _DIRECTORY)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot open the allowed root {root}: {exc.strerror or exc}") from exc
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o777, dir_fd=fd)
            child = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError as exc:
        os.close(fd)
        raise OutputNotWritableError(
            f"cannot write into {folder}: {part!r} below the allowed root {root} is not a folder "
            f"(a symbolic link, or it changed while the job ran): {exc.strerror or exc}"
        ) from exc
    return fd


def make_output_folder(folder: str | os.PathLike[str]) -> None:
    """Create a job's output folder (and its parents): confined when `confine_outputs` is active."""
    folder = Path(folder)
    roots = _roots()
    if roots is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputNotWritableError(f"cannot create output folder {folder}: {exc.strerror or exc}") from exc
        return
    os.close(_open_confined_folder(folder, roots, create=True))


def _confined_write(path: Path, write: Callable[[Path], object], mode: int, roots: tuple[str, ...]) -> None:
    """atomic_write inside the allowed roots: the folder pinned by its fd, the temporary file created
    there without following links, the writer given a path through that fd (/proc/self/fd), the
    rename done relative to it (a link at the target is replaced, never followed)."""
    folder_fd = _open_confined_folder(path.parent, roots, create=True)
    temporary = f".{path.stem}.{os.getpid()}.{secrets.token_hex(8)}.tmp{path.suffix}"
    created = False
    try:
        file_fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, mode, dir_fd=folder_fd)
        created = True
        try:
            made = os.fstat(file_fd)
            base = f"/proc/self/fd/{folder_fd}" if _PINNED_PATHS else os.path.realpath(path.parent)
            write(Path(base) / temporary)
            now = os.stat(temporary, dir_fd=folder_fd, follow_symlinks=False)
            if not stat.S_ISREG(now.st_mode) or (now.st_dev, now.st_ino) != (made.st_dev, made.st_ino):
                raise OutputNotWritableError(f"the temporary file for {path} was replaced while it was written")
            os.fsync(file_fd)
        finally:
            os.close(file_fd)
        os.replace(temporary, path.name, src_dir_fd=folder_fd, dst_dir_fd=folder_fd)
        created = False
    except BufferanyError:
        raise
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write {path} in folder {path.parent}: {exc.strerror or exc}") from exc
    finally:
        if created:
            with contextlib.suppress(OSError):
                os.unlink(temporary, dir_fd=folder_fd)
        os.close(folder_fd)


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
    roots = _roots()
    if roots is not None and getattr(_confinement, "outputs", 0) > 0:
        _confined_write(path, write, mode, roots)
        return
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
    except BufferanyError as exc:
        raise _disk_full(exc, path) or exc from exc.__cause__
    except OSError as exc:
        raise _disk_full(exc, path) or OutputNotWritableError(
            f"cannot write {path} in folder {folder}: {exc.strerror or exc}"
        ) from exc
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


_FULL_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
_NEARLY_FULL = 1 << 20  # a failed write with less than this free in its folder's file system: the disk is full
_FULL_WORDS = ("no space left on device", "disk quota exceeded", "not enough space on the disk")


def _disk_full(exc: BaseException, path: Path) -> DiskFullError | None:
    """The one disk-full error (ENOSPC, EDQUOT, or a writer library's message saying so), else None."""
    if isinstance(exc, DiskFullError):
        return exc
    full = (isinstance(exc, OSError) and exc.errno in _FULL_ERRNOS) or any(w in str(exc).lower() for w in _FULL_WORDS)
    if not full and isinstance(exc, OutputNotWritableError):  # writer libraries (OpenEXR) do not pass errno on
        with contextlib.suppress(OSError):
            space = os.statvfs(path.parent)
            full = space.f_bavail * space.f_frsize < _NEARLY_FULL
    if not full:
        return None
    return DiskFullError(f"the disk is full: cannot write {path}: no space left in {path.parent} ({exc}); free space or write elsewhere")

