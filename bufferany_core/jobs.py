"""A render job: the one description of a render (standard library only; hosts import it).

Every field of `RenderJob` carries its default and a `JobField` saying how it shows outside Python.
The `bufferany-render` flags, the argument list that describes a job (`render_arguments`), the
settings fingerprint recorded in every output header, the wire protocol's checks and the settings
of the Nuke node and the Blender add-on are all derived from these fields: a field added here shows
up in each of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from bufferany_core.conventions import DEFAULT_DEPTH_CONVENTION, DepthConvention
from bufferany_core.errors import BadArgumentsError

PASSES = ("depth", "normal")
DEPTH_CONVENTIONS = tuple(convention.value for convention in DepthConvention)
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # auto: fp16 on CUDA, fp32 on the CPU
SCHEDULES = ("farm", "official")  # official: Video Depth Anything's infer_video_depth (pipeline.official_schedule)
DOWNSCALES = ("none", "area")  # how big plates are shrunk to a model's input (models.depth.preprocess)
# auto: stabilise each pass whose model has no trained temporal layers; on: every pass; off: none
STABILIZE_MODES = ("auto", "on", "off")
RANDOM_WEIGHTS = "random"  # `random` or `random:SEED`: deterministic untrained weights, not a file

KINDS = ("text", "int", "flag", "choice", "passes")
_METADATA_KEY = "bufferany"


@dataclass(frozen=True)
class JobField:
    """How one `RenderJob` field appears on the command line, on the wire and in the hosts."""

    help: str
    label: str  # short name for a knob or property
    kind: str  # one of KINDS: text (str or None), int (int or None), flag (bool), choice (str), passes
    choices: tuple[str, ...] = ()
    flag: str | None = ""  # CLI option; "" derives --name-with-dashes; None: the positional argument
    short: str = ""  # a one-letter CLI alias, e.g. -o
    metavar: str = ""
    minimum: int | None = None  # int fields
    pixels: bool = False  # changes the passes' pixels: part of the settings fingerprint
    path: bool = False  # names a file or folder: clients make it absolute, the server refuses relative ones
    host: bool = True  # a setting in the Nuke node and the Blender add-on (False: the host fills it in)
    advanced: bool = False  # hosts show it with the advanced settings
    bare: str | None = None  # choice fields: the value of the CLI option given without one (`--stabilize` = on)
    # values older clients sent for this field, each with what it means now (checked by type: True is not 1)
    legacy: tuple[tuple[Any, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"JobField kind must be one of {KINDS}, got {self.kind!r}")
        if (self.kind == "choice") != bool(self.choices):
            raise ValueError("JobField choices go with kind 'choice' and only with it")
        if self.bare is not None and self.bare not in self.choices:
            raise ValueError("JobField bare must be one of the field's choices")

    def upgrade(self, value: Any) -> Any:
        """`value` as this version means it: an older client's value (`legacy`) mapped, others as given."""
        for old, new in self.legacy:
            if type(value) is type(old) and value == old:
                return new
        return value


def job_field(default: Any = dataclasses.MISSING, **spec: Any) -> Any:
    """A dataclass field of RenderJob with its `JobField` description."""
    return field(default=default, metadata={_METADATA_KEY: JobField(**spec)})


def is_random_weights(value: str) -> bool:
    """`random` or `random:SEED` names generated weights, not a file (`random_init.pth` is a file)."""
    return value == RANDOM_WEIGHTS or value.startswith(RANDOM_WEIGHTS + ":")


@dataclass
class RenderJob:
    input: str = job_field(
        help="plate: shot.####.exr, shot.%04d.exr, shot.$F4.exr, one frame of a sequence, or a movie",
        label="input",
        kind="text",
        flag=None,
        path=True,
        host=False,
        pixels=True,
    )
    output: str | None = job_field(
        None,
        help="output sequence (default: <name>_buffers.####.exr beside the input)",
        label="output",
        kind="text",
        short="-o",
        path=True,
        host=False,
    )
    frames: str | None = job_field(
        None,
        help="frames to render: 1001-1100, 1-100x5, 5,10 (default: all)",
        label="frames",
        kind="text",
        host=False,
    )
    shot_range: str | None = job_field(
        None,
        help="the whole shot when the frames are one farm chunk of it (same windows and key frames, so chunks agree)",
        label="shot range",
        kind="text",
        advanced=True,
    )
    passes: tuple[str, ...] = job_field(
        PASSES,
        help="comma-separated subset of depth,normal",
        label="passes",
        kind="passes",
        pixels=True,
    )
    depth_model: str | None = job_field(
        None, help="depth model name (default: the catalogue's default)", label="depth model", kind="text", pixels=True
    )
    normal_model: str | None = job_field(
        None, help="normal model name (default: the catalogue's default)", label="normal model", kind="text", pixels=True
    )
    weights: str | None = job_field(
        None,
        help="weights file of the one model rendered, or random[:SEED] for deterministic untrained weights "
        "(default: the official weights, found offline)",
        label="weights",
        kind="text",
        path=True,
        pixels=True,
        advanced=True,
    )
    depth_temporal_weights: str | None = job_field(
        None,
        help="trained temporal layers (.safetensors from bufferany-train) for the depth model",
        label="depth temporal weights",
        kind="text",
        metavar="PATH",
        path=True,
        pixels=True,
        advanced=True,
    )
    normal_temporal_weights: str | None = job_field(
        None,
        help="trained temporal layers (.safetensors from bufferany-train) for the normal model",
        label="normal temporal weights",
        kind="text",
        metavar="PATH",
        path=True,
        pixels=True,
        advanced=True,
    )
    models_dir: str | None = job_field(
        None,
        help="folder holding downloaded weights (default: $BUFFERANY_MODELS, then the Hugging Face cache)",
        label="models folder",
        kind="text",
        path=True,
        advanced=True,
    )
    device: str = job_field(
        "auto", help="auto (CUDA when present), cpu, cuda or cuda:N", label="device", kind="text", advanced=True
    )
    precision: str = job_field(
        "auto",
        help="float type the models run in: auto (fp16 on CUDA, fp32 on the CPU), fp32, or fp16/bf16 "
        "(CUDA only: refused on the CPU)",
        label="precision",
        kind="choice",
        choices=PRECISIONS,
        pixels=True,
        advanced=True,
    )
    input_colorspace: str | None = job_field(
        None,
        help="the plate's colour space (default: by file type)",
        label="input colorspace",
        kind="text",
        flag="--colorspace",
        pixels=True,
    )
    depth_convention: str = job_field(
        DEFAULT_DEPTH_CONVENTION.value,
        help="inverse: relative inverse depth (bigger = closer); distance: 1 / inverse (bigger = farther)",
        label="depth values",
        kind="choice",
        choices=DEPTH_CONVENTIONS,
        pixels=True,
    )
    window: int | None = job_field(
        None,
        help="model slots per window (default: the model's)",
        label="window",
        kind="int",
        minimum=1,
        pixels=True,
        advanced=True,
    )
    overlap: int | None = job_field(
        None,
        help="frames shared by consecutive windows (default: the model's)",
        label="overlap",
        kind="int",
        minimum=0,
        pixels=True,
        advanced=True,
    )
    schedule: str = job_field(
        "farm",
        help="farm: chunks on different machines agree with one run; official: the official inference exactly "
        "(Video Depth Anything's infer_video_depth, one process front to back; Marigold-E2E-FT's preprocessing for normals)",
        label="schedule",
        kind="choice",
        choices=SCHEDULES,
        pixels=True,
        advanced=True,
    )
    depth_processing_size: int | None = job_field(
        None,
        help="depth model's working resolution: the plate's short side is scaled to about this, both sides rounded "
        "to multiples of 14 (default: the model's)",
        label="depth processing size",
        kind="int",
        minimum=1,
        pixels=True,
        advanced=True,
    )
    normal_processing_size: int | None = job_field(
        None,
        help="normal model's working resolution: the long edge, 0 keeps the plate's size (default: the model's)",
        label="normal processing size",
        kind="int",
        minimum=0,
        pixels=True,
        advanced=True,
    )
    downscale: str = job_field(
        "none",
        help="how plates bigger than a model's input are shrunk to it: none (the model's own resize, as its official "
        "inference) or area (averaged straight down to the input size: no moire from fine texture on 4K plates)",
        label="downscale",
        kind="choice",
        choices=DOWNSCALES,
        pixels=True,
        advanced=True,
    )
    stabilize: str = job_field(
        "auto",
        help="optical-flow stabiliser as a final stage: auto stabilises each pass whose model has no trained "
        "temporal layers (image priors, Buffer Anytime without temporal weights), on (also a bare --stabilize) "
        "every pass, off none",
        label="stabilise",
        kind="choice",
        choices=STABILIZE_MODES,
        bare="on",
        legacy=((True, "on"), (False, "off")),  # protocol 1 clients and hosts sent a boolean
        pixels=True,
    )
    include_plate: bool = job_field(
        False,
        help="also carry the plate's RGBA into the output",
        label="include plate",
        kind="flag",
        pixels=True,
        host=False,
    )
    overwrite: bool = job_field(
        False, help="re-render frames already finished", label="overwrite", kind="flag", host=False
    )

    def __post_init__(self) -> None:
        if isinstance(self.passes, list):
            self.passes = tuple(self.passes)
        for f, spec in job_fields():
            setattr(self, f.name, spec.upgrade(getattr(self, f.name)))
            check_field(f.name, spec, getattr(self, f.name))
        if not self.input:
            raise BadArgumentsError("job field 'input' must name a file or sequence")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["passes"] = list(self.passes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RenderJob:
        if not isinstance(data, dict):
            raise BadArgumentsError("a job must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise BadArgumentsError(f"unknown job field(s): {', '.join(extra)}")
        return cls(**data)

    def changed_fields(self) -> dict[str, Any]:
        """Fields that differ from their defaults, in declaration order."""
        return {f.name: getattr(self, f.name) for f, _ in job_fields() if getattr(self, f.name) != f.default}

    def pixel_settings(self) -> dict[str, Any]:
        """The fields that change the passes' pixels, where they differ from their defaults (so a field
        added later leaves renders made before it valid): the raw part of the settings fingerprint."""
        return {
            name: list(value) if isinstance(value, tuple) else value
            for name, value in self.changed_fields().items()
            if field_spec(name).pixels
        }


def job_fields() -> list[tuple[dataclasses.Field, JobField]]:
    """Every RenderJob field with its description, in declaration order."""
    return [(f, f.metadata[_METADATA_KEY]) for f in dataclasses.fields(RenderJob)]


def field_spec(name: str) -> JobField:
    for f, spec in job_fields():
        if f.name == name:
            return spec
    raise KeyError(name)


def host_fields() -> list[tuple[dataclasses.Field, JobField]]:
    """The fields a host shows as settings (knobs, properties), in declaration order."""
    return [(f, spec) for f, spec in job_fields() if spec.host]


_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "int": (int,),
    "flag": (bool,),
    "choice": (str,),
    "passes": (list, tuple),
}
_TYPE_WORDS = {"text": "text", "int": "an integer", "flag": "true or false", "choice": "text", "passes": "a list of passes"}


def check_field(name: str, spec: JobField, value: Any) -> None:
    """Raise BadArgumentsError naming the field when `value` does not fit it."""
    if value is None and spec.kind in ("text", "int"):
        return
    if not isinstance(value, _TYPES[spec.kind]) or (spec.kind == "int" and isinstance(value, bool)):
        optional = " or null" if spec.kind in ("text", "int") else ""
        raise BadArgumentsError(
            f"job field {name!r} has the wrong type ({type(value).__name__}); expected {_TYPE_WORDS[spec.kind]}{optional}"
        )
    if spec.kind == "int" and spec.minimum is not None and value < spec.minimum:
        raise BadArgumentsError(f"job field {name!r} must be at least {spec.minimum}, got {value}")
    if spec.kind == "choice" and value not in spec.choices:
        raise BadArgumentsError(f"job field {name!r} must be one of {', '.join(spec.choices)}, got {value!r}")
    if spec.kind == "passes" and (not value or any(p not in PASSES for p in value) or len(set(value)) != len(value)):
        raise BadArgumentsError(f"job field {name!r} must be a non-empty subset of {PASSES} without repeats, got {list(value)}")


def cli_option(name: str, spec: JobField) -> str:
    """The `bufferany-render` option of a field: its own `flag`, else `--name-with-dashes`."""
    return spec.flag or "--" + name.replace("_", "-")


def render_arguments(job: RenderJob) -> list[str]:
    """`bufferany-render` arguments (without the program) that describe `job`; the CLI parses them back
    into an equal job. Fields left at their defaults are left out."""
    args = [job.input]
    for name, value in job.changed_fields().items():
        spec = field_spec(name)
        if spec.flag is None:
            continue
        flag = cli_option(name, spec)
        if spec.kind == "flag":
            args.append(flag)
        elif spec.kind == "passes":
            args += [flag, ",".join(value)]
        else:
            args += [flag, str(value)]
    return args


def parse_passes(text: str) -> tuple[str, ...]:
    """`depth,normal` -> ("depth", "normal"), checked."""
    passes = tuple(p.strip() for p in text.split(",") if p.strip())
    check_field("passes", field_spec("passes"), passes)
    return passes


def fields_markdown() -> str:
    """The job fields as the Markdown table in docs/jobs.md (`python -m bufferany_core.jobs`)."""
    rows = ["| field | CLI | type | default | pixels | host | what it is |", "|---|---|---|---|---|---|---|"]
    for f, spec in job_fields():
        flag = "positional" if spec.flag is None else " ".join(filter(None, (spec.short, cli_option(f.name, spec))))
        kind = " \\| ".join(spec.choices) if spec.kind == "choice" else spec.kind
        default = "required" if f.default is dataclasses.MISSING else ",".join(f.default) if isinstance(f.default, tuple) else f.default
        host = ("advanced" if spec.advanced else "yes") if spec.host else "no"
        rows.append(
            f"| `{f.name}` | `{flag}` | {kind} | `{default}` | {'yes' if spec.pixels else 'no'} | {host} | {spec.help.replace('|', '/')} |"
        )
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(fields_markdown(), end="")
