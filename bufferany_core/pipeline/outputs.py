"""What a render may write over, and what it leaves behind (issue 18).

- The input is never an output: an output that resolves (links, `..`, letter case on a
  case-insensitive file system) to a frame of the input, or into the input's sequence, is refused.
- Frames that exist from other settings are not replaced without `--overwrite`: the run stops
  before rendering, lists them and names the settings that differ (`conflict_error`).
- The plate's content is part of the settings (`plate_signature`: each frame file's size and mtime).
- Temporary files a killed render left (`.NAME.PID.HEX.tmp.exr`, `atomic.atomic_write`) are removed
  by the next run of the same output, for the frames it renders.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from bufferany_core.errors import BadArgumentsError, OutputConflictError
from bufferany_core.frames import FrameSequence, format_frame_spec
from bufferany_core.pipeline.writer import ExistingFrame, settings_differences

SHOWN = 10  # frames listed by name in a conflict message


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _case_insensitive(folder: Path) -> bool:
    """Whether names in `folder` match without regard to case (macOS, Windows, some NAS shares)."""
    probe = folder.name.swapcase()
    if probe == folder.name:
        return os.path.normcase("A") == os.path.normcase("a")
    return _same_file(folder, folder.with_name(probe))


def _split(pattern: str) -> tuple[str, str]:
    """(head, tail) of a sequence's file name around its frame number (`shot.####.exr` -> shot., .exr)."""
    name = os.path.basename(pattern)
    match = re.search(r"#+|%0?\d*d|\$F\d*|@+", name)
    return (name[: match.start()], name[match.end() :]) if match else (name, "")


def check_not_input(sequence: FrameSequence, output: FrameSequence, frames: Sequence[int]) -> None:
    """Refuse an output that would write over the plate: an output frame that is an input frame
    (through links, `..` or letter case), or an output sequence inside the input's (same folder,
    same name around the frame number)."""
    if sequence.is_movie:
        movie = Path(sequence.hash_pattern)
        if any(_same_file(movie, output.path(f)) for f in frames[:1]):
            raise BadArgumentsError(f"output {output.hash_pattern} would overwrite the input {sequence.hash_pattern}")
        return
    in_folder, out_folder = Path(sequence.hash_pattern).parent, Path(output.hash_pattern).parent
    same_folder = os.path.realpath(in_folder) == os.path.realpath(out_folder) or _same_file(in_folder, out_folder)
    fold = same_folder and _case_insensitive(Path(os.path.realpath(in_folder)))

    def norm(text: str) -> str:
        return norm_name(text, fold)

    if same_folder:
        if tuple(map(norm, _split(sequence.hash_pattern))) == tuple(map(norm, _split(output.hash_pattern))):
            raise BadArgumentsError(
                f"output {output.hash_pattern} would overwrite the input {sequence.hash_pattern} "
                f"(the same sequence{' through a link' if in_folder != out_folder else ''}): choose another name or folder"
            )
    inputs = {os.path.realpath(sequence.path(f)) for f in sequence.frames}
    names = {norm(sequence.path(f).name) for f in sequence.frames} if same_folder else set()
    for frame in frames:
        target = output.path(frame)
        if os.path.realpath(target) in inputs or norm_name(target.name, same_folder and fold) in names:
            raise BadArgumentsError(f"output {target} is the input frame {os.path.realpath(target)}: choose another output")


def norm_name(name: str, fold: bool) -> str:
    return name.casefold() if fold else name


def plate_signature(sequence: FrameSequence, shot: Sequence[int]) -> str:
    """A digest of the shot's frame files as they are on disk (name, size, mtime in whole seconds,
    the precision every file server keeps): replacing or editing a plate frame re-renders; copying
    the plate elsewhere with its times kept does not."""
    digest = hashlib.sha256()
    paths = [Path(sequence.hash_pattern)] if sequence.is_movie else [sequence.path(f) for f in shot]
    for path in paths:
        try:
            st = os.stat(path)
            digest.update(f"{path.name}\0{st.st_size}\0{int(st.st_mtime)}\n".encode())
        except OSError:
            digest.update(f"{path.name}\0missing\n".encode())
    return digest.hexdigest()[:16]


def conflict_error(output: FrameSequence, conflicts: Mapping[int, ExistingFrame], ours: Mapping[str, object]) -> OutputConflictError:
    """The one message for frames that exist from other settings: which, and what differs."""
    frames = sorted(conflicts)
    lines = [
        f"{len(frames)} output frame(s) exist from other settings and would be replaced: "
        f"{format_frame_spec(frames)} ({output.hash_pattern}); nothing was rendered. "
        "Re-run with --overwrite to replace them, or choose another output (-o)."
    ]
    groups: dict[tuple[str, ...], list[int]] = {}
    for frame in frames:
        groups.setdefault(tuple(settings_differences(ours, conflicts[frame].values)), []).append(frame)
    for differences, members in groups.items():
        lines.append(f"  frames {format_frame_spec(members)}: " + "; ".join(differences))
    return OutputConflictError("\n".join(lines))


_TEMPORARY = re.compile(r"^\.(?P<stem>.+)\.(?P<pid>\d+)\.[0-9a-f]+\.tmp(?P<suffix>\.[^.]+)$")


def stale_temporaries(output: FrameSequence, frames: Sequence[int]) -> list[Path]:
    """Hidden temporary files (`atomic_write`'s `.NAME.PID.HEX.tmp.exr`) of `frames` in the output
    folder that no running process of this machine is writing (another pid, or ours from before)."""
    folder = Path(output.hash_pattern).parent
    wanted = {output.path(f).stem: f for f in frames}
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        match = _TEMPORARY.match(name)
        if not match or match["stem"] not in wanted or int(match["pid"]) == os.getpid():
            continue
        if not _running(int(match["pid"])):
            found.append(folder / name)
    return sorted(found)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(output: FrameSequence, frames: Sequence[int]) -> list[Path]:
    removed = []
    for path in stale_temporaries(output, frames):
        try:
            path.unlink()
            removed.append(path)
        except OSError:
            pass
    return removed


def weights_by_content(job) -> dict[str, str]:
    """`--weights PATH` in the settings by its content (sha256), not its path: the same file on another
    mount renders the same; retrained weights in the same file re-render."""
    from bufferany_core.jobs import is_random_weights  # noqa: PLC0415
    from bufferany_core.models.weights import sha256_of  # noqa: PLC0415

    if not job.weights or is_random_weights(job.weights):
        return {}
    path = Path(job.weights).expanduser()
    return {"weights": "sha256:" + sha256_of(path)} if path.is_file() else {}
