"""Render-farm jobs: Deadline 10 (CommandLine plugin), OpenCue (a job spec built with pyoutline) and
Open Job Description (AWS Deadline Cloud), with their frame tokens.

A farm splits the shot into chunks and runs `bufferany-render --frames A-B --shot-range SHOT` per
chunk; the shot range makes every chunk use the same windows and key frames, so the chunks agree
with one run of the whole shot. A job runs on other machines, from another working folder: every
path in it is absolute and normalised (`farm_job`), optionally mapped to the workers' mounts
(`--path-map FROM=TO`), and every value is checked for what the job file can carry (`check_value`).
The farm's own frame list (`Frames=`, the layer range, the OpenJD parameter space) is the job's
frames as asked for, steps and lists included; a chunk's `A-B` is clamped to them by the CLI.

Standard library only, except `opencue_outline` (pyoutline) and `openjd_job` (openjd-model), which
import their packages when called.
"""

from __future__ import annotations

import json
import ntpath
import os
import posixpath
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from bufferany_core.atomic import atomic_write
from bufferany_core.errors import BadArgumentsError, FrameRangeError, OutputNotWritableError
from bufferany_core.jobs import RenderJob, render_arguments
from bufferany_core.protocol import PATH_FIELDS, names_a_path

DEADLINE_START = "<STARTFRAME>"
DEADLINE_END = "<ENDFRAME>"
OPENCUE_START = "#FRAME_START#"
OPENCUE_END = "#FRAME_END#"
OPENJD_CHUNK = "{{Task.Param.Frames}}"  # an OpenJD task's chunk, e.g. 1001-1010 (a RANGE_EXPR)
# Deadline `<STARTFRAME%4>` (padded), OpenCue `#IFRAME#`, `#ZFRAME#` (4-digit), `#FRAME_CHUNK#`, ...
FARM_TOKEN = re.compile(r"<(STARTFRAME|ENDFRAME)(?:%(\d+))?>|#(FRAME_START|FRAME_END|IFRAME|ZFRAME|FRAME_CHUNK|FRAMESPEC)#")
# What Deadline's CommandLine plugin replaces in Executable/Arguments (case-insensitive): a path holding
# one of these would be changed on the worker.
_DEADLINE_TOKENS = re.compile(r"<(?:STARTFRAME|ENDFRAME|QUOTE|AUXFILE\d*)(?:%\d+)?>", re.IGNORECASE)
# Line breaks of any kind, other control characters, and what Unicode also reads as a line end.
_UNCARRIABLE = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
# The CommandLine plugin turns typographic double quotes into plain ones before splitting.
_DEADLINE_QUOTES = ('"', "\u201c", "\u201d")
_WINDOWS_PATH = re.compile(r"^(?:[A-Za-z]:[\\/]|\\\\)")
ENVIRONMENT_PASSED = ("BUFFERANY_MODELS",)  # passed to the workers when set here (path-mapped)


def check_expanded(value: str, *, field: str) -> None:
    """Refuse a frame argument whose farm tokens were never expanded (a job run outside the farm)."""
    match = FARM_TOKEN.search(value)
    if match:
        raise BadArgumentsError(
            f"{field} {value!r} still holds the farm token {match.group(0)}: the farm expands it; "
            "run by hand with real frame numbers"
        )


def clamp_to_shot(frames: list[int], shot: list[int], *, spec: str) -> tuple[list[int], list[int]]:
    """(frames inside the shot, frames dropped). OpenCue's last chunk `#FRAME_END#` overshoots the
    shot's end, and a chunk `A-B` of a stepped shot names the frames between its steps: those frames
    are dropped, not an error; a chunk with no frame in the shot is."""
    inside = set(shot)
    kept = [f for f in frames if f in inside]
    dropped = [f for f in frames if f not in inside]
    if not kept:
        raise FrameRangeError(f"--frames {spec!r} has no frame inside the shot range {shot[0]}-{shot[-1]}")
    return kept, dropped


# --- values a job file can carry ------------------------------------------------------------------


def check_value(value: str, *, what: str, deadline: bool = False) -> str:
    """`value` unchanged, or BadArgumentsError naming `what` when a job file cannot carry it: line
    breaks and other control characters (they would end the `Key=Value` line, or the command),
    and for Deadline double quotes (its arguments are split like a Windows command line) and the
    plugin's own tokens (`<QUOTE>`, `<STARTFRAME>`, ... are replaced on the worker)."""
    bad = _UNCARRIABLE.search(value)
    if bad:
        raise BadArgumentsError(
            f"{what} {value!r} holds the control character U+{ord(bad.group(0)):04X} (a line break or similar), "
            "which a farm job file cannot carry: rename the file or folder"
        )
    if deadline:
        quote = next((q for q in _DEADLINE_QUOTES if q in value), None)
        if quote:
            raise BadArgumentsError(f"{what} {value!r} holds a double quote ({quote}), which a Deadline command line cannot carry")
        token = _DEADLINE_TOKENS.search(value)
        if token:
            raise BadArgumentsError(f"{what} {value!r} holds {token.group(0)}, which Deadline would replace on the worker")
    return value


def deadline_quote(argument: str) -> str:
    """One argument for Deadline's `Arguments=` (split by the rules of a Windows command line on every
    platform): bare when it has no blank, else in double quotes with a trailing backslash run doubled
    (so `"C:\\dir\\"` does not swallow the closing quote). Double quotes are refused (`check_value`)."""
    check_value(FARM_TOKEN.sub("", argument), what="argument", deadline=True)  # the chunk's own tokens stay
    if argument and not re.search(r"[\s]", argument):
        return argument
    trailing = len(argument) - len(argument.rstrip("\\"))
    return '"' + argument + "\\" * trailing + '"'


def deadline_join(args: Sequence[str]) -> str:
    return " ".join(deadline_quote(a) for a in args)


# --- paths that mean the same on every worker -----------------------------------------------------


@dataclass(frozen=True)
class PathMap:
    """`FROM=TO`: a path under FROM here is TO on the workers (`/mnt/shots=S:\\shots` for Windows workers)."""

    source: str
    target: str

    @classmethod
    def parse(cls, text: str) -> PathMap:
        source, sep, target = text.partition("=")
        if not sep or not source or not target:
            raise BadArgumentsError(f"--path-map {text!r}: expected FROM=TO, e.g. /mnt/shots=S:\\shots")
        check_value(text, what="--path-map")
        return cls(source, target)

    def apply(self, path: str) -> str | None:
        """`path` under TO, or None when it is not under FROM (a Windows FROM matches without case)."""
        windows = bool(_WINDOWS_PATH.match(self.source))
        norm = (lambda p: p.replace("\\", "/").rstrip("/").lower()) if windows else (lambda p: p.rstrip("/"))
        head, candidate = norm(self.source), norm(path) if not windows else path.replace("\\", "/").lower()
        if candidate != head and not candidate.startswith(head + "/"):
            return None
        rest = path.replace("\\", "/")[len(head) :].lstrip("/")
        if _WINDOWS_PATH.match(self.target):
            return ntpath.join(self.target, rest.replace("/", "\\")) if rest else self.target
        return posixpath.join(self.target, rest) if rest else self.target


def map_path(path: str, maps: Sequence[PathMap]) -> str:
    """`path` through the longest FROM it lies under (none: unchanged)."""
    for entry in sorted(maps, key=lambda m: len(m.source), reverse=True):
        mapped = entry.apply(path)
        if mapped is not None:
            return mapped
    return path


def absolute(value: str) -> str:
    """An absolute, normalised path (`~` expanded, `.` and `..` resolved, links kept: the farm's mounts
    may be links)."""
    return os.path.normpath(os.path.abspath(os.path.expanduser(value)))


def farm_job(job: RenderJob, *, output: str, path_maps: Sequence[PathMap] = (), frames: str, shot_range: str) -> RenderJob:
    """`job` as a farm task runs it: every path field (`JobField.path`) absolute and mapped, the output
    named explicitly (the plan's), the chunk's frames and the whole shot's range."""
    values = job.to_dict()
    values["output"] = output
    for name in PATH_FIELDS:
        if names_a_path(name, values[name]):
            values[name] = map_path(absolute(values[name]), path_maps)
    values.update(frames=frames, shot_range=shot_range)
    return RenderJob(**values)


# --- the command a task runs -----------------------------------------------------------------------


def worker_command(executable: str | None, path_maps: Sequence[PathMap] = ()) -> list[str]:
    """The program a task starts: `executable` as given (split like a shell would), else this
    installation's `bufferany-render` (absolute, mapped)."""
    if executable:
        return shlex.split(executable)
    script = Path(sys.executable).with_name("bufferany-render")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bufferany_core.pipeline.cli"]
    return [map_path(absolute(command[0]), path_maps), *command[1:]]


@dataclass
class FarmOptions:
    """How a job goes to a farm (not part of the render: nothing here changes a frame)."""

    chunk_size: int = 10
    name: str | None = None
    path_maps: Sequence[PathMap] = ()
    executable: str | None = None  # the command on the workers (default: this installation's bufferany-render)
    environment: Mapping[str, str] = field(default_factory=dict)  # extra variables for every task
    pool: str | None = None
    secondary_pool: str | None = None
    group: str | None = None
    priority: int | None = None
    comment: str | None = None
    machine_limit: int | None = None
    gpus: int = 0  # GPUs a task reserves (OpenCue layer gpus, OpenJD amount.worker.gpu)
    service: str | None = None  # OpenCue service
    tags: Sequence[str] = ()  # OpenCue tags
    show: str = "bufferany"  # OpenCue show
    shot: str | None = None  # OpenCue shot

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise BadArgumentsError(f"--chunk-size must be at least 1, got {self.chunk_size}")
        if self.machine_limit is not None and self.machine_limit < 0:
            raise BadArgumentsError(f"--farm-machine-limit must be 0 (none) or more, got {self.machine_limit}")
        if self.priority is not None and not 0 <= self.priority <= 100:
            raise BadArgumentsError(f"--farm-priority must be 0 to 100, got {self.priority}")
        if self.gpus < 0:
            raise BadArgumentsError(f"--farm-gpus must be 0 or more, got {self.gpus}")

    def task_environment(self) -> dict[str, str]:
        """Variables every task gets: BUFFERANY_MODELS when set here (absolute, mapped), then the
        ones asked for (as given)."""
        env = {
            name: map_path(absolute(os.environ[name]), self.path_maps) for name in ENVIRONMENT_PASSED if os.environ.get(name)
        }
        env.update(self.environment)
        for key, value in env.items():
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
                raise BadArgumentsError(f"--farm-env {key!r}: a variable name is letters, digits and _")
            check_value(value, what=f"environment variable {key}")
        return env


def parse_environment(items: Sequence[str]) -> dict[str, str]:
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BadArgumentsError(f"--farm-env {item!r}: expected NAME=VALUE")
        env[key] = value
    return env


@dataclass(frozen=True)
class FarmShot:
    """What the plan says about the frames a farm job covers."""

    frames: list[int]  # the frames the job renders (the farm's own frame list)
    shot: list[int]  # the whole shot (every chunk's --shot-range)
    output_pattern: str  # absolute output sequence (####)
    input_pattern: str

    @property
    def frames_spec(self) -> str:
        from bufferany_core.frames.framespec import format_frame_spec  # noqa: PLC0415

        return format_frame_spec(self.frames)

    @property
    def shot_spec(self) -> str:
        from bufferany_core.frames.framespec import format_frame_spec  # noqa: PLC0415

        return format_frame_spec(self.shot)


def chunk_arguments(job: RenderJob, farm_shot: FarmShot, options: FarmOptions, chunk: str) -> list[str]:
    """The whole command of one task, `chunk` being the farm's frame token(s)."""
    task = farm_job(
        job,
        output=absolute(farm_shot.output_pattern),
        path_maps=options.path_maps,
        frames=chunk,
        shot_range=farm_shot.shot_spec,
    )
    command = worker_command(options.executable, options.path_maps) + render_arguments(task)
    for argument in command:
        check_value(argument, what="argument")
    return command


def opencue_command(job: RenderJob, farm_shot: FarmShot, options: FarmOptions | None = None) -> str:
    """The command of an OpenCue layer (run by a POSIX shell on the host): one chunk per frame range,
    `#FRAME_END#` clamped to the shot by the CLI."""
    return shlex.join(chunk_arguments(job, farm_shot, options or FarmOptions(), f"{OPENCUE_START}-{OPENCUE_END}"))


def _job_name(job: RenderJob, options: FarmOptions) -> str:
    return check_value(options.name or f"bufferany {Path(job.input).name}", what="job name")


def write_deadline_job(job: RenderJob, directory: str | Path, farm_shot: FarmShot, options: FarmOptions) -> tuple[Path, Path]:
    """Write `job_info.job` and `plugin_info.job` for Deadline 10's CommandLine plugin; submit them with
    `deadlinecommand job_info.job plugin_info.job`.

    The plugin runs Executable with Arguments (ShellExecute off: no shell, so nothing is expanded but
    its own tokens and its repository path mapping), reads `Progress: NN%` lines from stdout with its
    built-in handler `.*Progress: (\\d+)%.*`, and fails the task on a non-zero exit code."""
    folder = Path(directory).expanduser()
    program, *program_args = chunk_arguments(job, farm_shot, options, f"{DEADLINE_START}-{DEADLINE_END}")
    out = Path(absolute(farm_shot.output_pattern))
    output_folder = map_path(str(out.parent), options.path_maps)
    job_info: dict[str, str] = {
        "Plugin": "CommandLine",
        "Name": _job_name(job, options),
        "Frames": farm_shot.frames_spec,
        "ChunkSize": str(options.chunk_size),
        "OutputDirectory0": output_folder,
        "OutputFilename0": out.name,
    }
    optional = {
        "Pool": options.pool,
        "SecondaryPool": options.secondary_pool,
        "Group": options.group,
        "Priority": options.priority,
        "Comment": options.comment,
        "MachineLimit": options.machine_limit,
    }
    job_info.update({k: str(v) for k, v in optional.items() if v is not None})
    for index, (key, value) in enumerate(options.task_environment().items()):
        job_info[f"EnvironmentKeyValue{index}"] = f"{key}={value}"
    plugin_info = {
        "Executable": check_value(program, what="executable", deadline=True),
        "Arguments": deadline_join(program_args),
        "Shell": "default",
        "ShellExecute": "False",
        "SingleFramesOnly": "False",
        # the input's folder exists on every worker that can render the job
        "StartupDirectory": map_path(os.path.dirname(absolute(farm_shot.input_pattern)), options.path_maps),
    }
    for table in (job_info, plugin_info):
        for key, value in table.items():
            check_value(value, what=f"Deadline {key}")
    _make_folder(folder, "Deadline job")
    paths = folder / "job_info.job", folder / "plugin_info.job"
    for path, table in zip(paths, (job_info, plugin_info), strict=True):
        text = "".join(f"{k}={v}\n" for k, v in table.items())
        # Atomic: a full disk must not leave a truncated job file that deadlinecommand would submit.
        atomic_write(path, partial(Path.write_text, data=text, encoding="utf-8"))
    return paths


def _make_folder(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot create the {what} folder {folder}: {exc.strerror or exc}") from exc


# --- OpenCue -------------------------------------------------------------------------------------------


def opencue_outline(job: RenderJob, farm_shot: FarmShot, options: FarmOptions):
    """An `outline.Outline` (OpenCue's pyoutline) with one Shell layer: the chunk command, the job's
    frames (steps and lists kept), chunk size, service, tags, GPUs and the task environment."""
    try:
        import outline  # noqa: PLC0415
        import outline.modules.shell  # noqa: PLC0415
    except ImportError as exc:
        raise BadArgumentsError(
            f"--opencue-job needs OpenCue's pyoutline (pip install opencue-pyoutline opencue-pycue): {exc}"
        ) from exc
    name = re.sub(r"[^A-Za-z0-9_]+", "_", _job_name(job, options)).strip("_") or "bufferany"
    ol = outline.Outline(name, frame_range=farm_shot.frames_spec, show=options.show, shot=options.shot or "bufferany")
    layer_args: dict = {"chunk": options.chunk_size, "range": farm_shot.frames_spec}
    if options.service:
        layer_args["service"] = options.service
    if options.tags:
        layer_args["tags"] = list(options.tags)
    if options.gpus:
        layer_args["gpus"] = options.gpus
    layer = outline.modules.shell.Shell("render", command=opencue_command(job, farm_shot, options), **layer_args)
    for key, value in options.task_environment().items():
        layer.set_env(key, value)
    ol.add_layer(layer)
    return ol


def opencue_spec(job: RenderJob, farm_shot: FarmShot, options: FarmOptions, *, user: str | None = None) -> str:
    """The OpenCue job specification (XML, the cuebot's `cjsl` DTD) pyoutline builds for the outline;
    submit with `cuerun`/`opencue.api.launchSpec`, or pyoutline's `outline.cuerun.launch`."""
    from outline import cuerun  # noqa: PLC0415

    ol = opencue_outline(job, farm_shot, options)
    launcher_args = {"user": user or os.environ.get("USER", "render"), "nomail": True}
    if options.priority is not None:
        launcher_args["priority"] = options.priority
    return cuerun.OutlineLauncher(ol, **launcher_args).serialize(use_pycuerun=False)


# --- Open Job Description (AWS Deadline Cloud) -----------------------------------------------------------


def chunk_ranges(frames: Sequence[int], size: int) -> list[str]:
    """The job's frames in runs of `size` (in order), each as a spec: one OpenJD task per chunk."""
    from bufferany_core.frames.framespec import format_frame_spec  # noqa: PLC0415

    return [format_frame_spec(frames[i : i + size]) for i in range(0, len(frames), size)]


def openjd_template(job: RenderJob, farm_shot: FarmShot, options: FarmOptions) -> dict:
    """An OpenJD 2023-09 job template: one step whose tasks are the chunks (a STRING task parameter
    holding each chunk's frame spec), the command and its arguments as a list (no shell)."""
    program, *args = chunk_arguments(job, farm_shot, options, OPENJD_CHUNK)
    environment = options.task_environment()
    step: dict = {
        "name": "render",
        "parameterSpace": {"taskParameterDefinitions": [{"name": "Frames", "type": "STRING", "range": chunk_ranges(farm_shot.frames, options.chunk_size)}]},
        "script": {"actions": {"onRun": {"command": program, "args": args}}},
    }
    if environment:
        step["stepEnvironments"] = [{"name": "bufferany", "variables": environment}]
    if options.gpus:
        step["hostRequirements"] = {"amounts": [{"name": "amount.worker.gpu", "min": options.gpus}]}
    return {
        "specificationVersion": "jobtemplate-2023-09",
        "name": _job_name(job, options),
        "steps": [step],
    }


def write_openjd_job(job: RenderJob, directory: str | Path, farm_shot: FarmShot, options: FarmOptions) -> tuple[Path, Path]:
    """Write `template.json` and `parameter_values.json` (a job bundle: `deadline bundle submit DIR`),
    validated by openjd-model when it is installed."""
    template = openjd_template(job, farm_shot, options)
    parameters: dict = {"parameterValues": []}
    validate_openjd(template)
    folder = Path(directory).expanduser()
    _make_folder(folder, "OpenJD job")
    paths = folder / "template.json", folder / "parameter_values.json"
    for path, data in zip(paths, (template, parameters), strict=True):
        atomic_write(path, partial(Path.write_text, data=json.dumps(data, indent=2) + "\n", encoding="utf-8"))
    return paths


def validate_openjd(template: dict) -> None:
    """Check the template with openjd-model (skipped when it is not installed)."""
    try:
        from openjd.model import DocumentType, decode_job_template, document_string_to_object  # noqa: F401, PLC0415
    except ImportError:
        return
    try:
        decode_job_template(template=template)
    except Exception as exc:  # openjd's DecodeValidationError
        raise BadArgumentsError(f"the OpenJD job template does not validate: {exc}") from exc
