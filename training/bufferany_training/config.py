"""Training configuration: TOML files with the paper's defaults, overridable from the command line.

A config file has one table per section below; every key is optional (the dataclass default
applies) and an unknown key is an error naming the file and the key. `--set section.key=value`
overrides take TOML values (`--set optim.lr=3e-5`, `--set data.size=[112,196]`); a value that is
not valid TOML is taken as a string (`--set model.weights=random:3`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from bufferany_core.errors import BadArgumentsError

Task = Literal["depth", "normal"]
CONFIGS_DIR = Path(__file__).resolve().parents[1] / "configs"


@dataclass(frozen=True)
class ModelSection:
    name: str = "buffer-anytime-depth-small"
    weights: str = ""  # the prior's weights: "" = registry, "random[:SEED]", or a path
    models_dir: str = ""
    train_head: bool = False  # depth only: the DPT head trains too (as a copy beside the frozen prior's)


@dataclass(frozen=True)
class DataSection:
    frames: int = 110  # frames per clip (shorter clips give all they have)
    size: tuple[int, int] = (294, 518)  # (height, width) of the training crops
    scale: tuple[float, float] = (0.5, 1.0)  # crop side, as a fraction of the largest crop of that aspect
    strides: tuple[int, ...] = (1, 2)  # frame steps a clip is sampled with (clips too short fall back to 1)
    flip: bool = True  # random horizontal flips
    colorspace: str = ""  # "" = by file type (scene-linear EXR, sRGB movies)
    workers: int = 4  # DataLoader worker processes per rank
    cache: str = ""  # folder of cached flows (empty: flows computed per sample on the crop)


@dataclass(frozen=True)
class FlowSection:
    backend: str = "dis"  # "dis" (CPU, in the loader workers) or "raft-small" / "raft-large" (on the device)
    weights: str = ""  # RAFT weights ("" = registry, "random[:SEED]", or a path)
    cycle_tolerance: float = 1.0  # tau_c, pixels at the training resolution
    cycle_mask: bool = True
    # Drop pixels within Manhattan distance < 3 of a Canny edge of the prior's depth. None = by
    # task: on for depth, off for normals (there is no depth to find edges in).
    edge_mask: bool | None = None


@dataclass(frozen=True)
class LossSection:
    w_reg: float = 1.0
    w_stable: float = 1.0
    # depth: "clip" takes L_stable on the clip normalised by median and mean absolute deviation (ours:
    # it cannot be lowered by shrinking the prediction); "raw" on the raw predictions (the paper's).
    stable_space: str = "clip"
    # normals: "video" or "prior" undo the camera's turn between frames before L_stable compares
    # them, the turn fitted along the flow (bufferany_training.camera_turn) to the video model's own
    # detached normals or to the frozen image model's: camera-space normals of a static surface
    # really change by the turn, which plain L_stable ("off") counts as flicker.
    stable_rotation: str = "off"


@dataclass(frozen=True)
class OptimSection:
    lr: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 1  # clips per rank and step; the global batch is batch_size * world size
    iterations: int = 20_000
    grad_clip: float = 0.0  # max gradient norm; 0 = no clipping (the paper states none)
    # "constant" (the paper states no schedule) or "cosine": lr * (1 + cos(pi * (step - 1) / iterations)) / 2,
    # a function of the step alone, so a resumed run follows it (a larger --iterations stretches it).
    schedule: str = "constant"


@dataclass(frozen=True)
class RunSection:
    device: str = "auto"  # auto, cpu, cuda (torchrun: each rank takes cuda:LOCAL_RANK)
    precision: str = "bf16"  # bf16 autocast on CUDA; the CPU always trains in fp32
    gradient_checkpointing: bool = False
    decode_chunk: int = 4  # normals: frames the VAE decodes at once (deferred back-propagation)
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    log_every: int = 10
    progress: bool = True


@dataclass(frozen=True)
class TrainConfig:
    task: Task = "depth"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    flow: FlowSection = field(default_factory=FlowSection)
    loss: LossSection = field(default_factory=LossSection)
    optim: OptimSection = field(default_factory=OptimSection)
    run: RunSection = field(default_factory=RunSection)

    def __post_init__(self) -> None:
        if self.flow.edge_mask is None:
            object.__setattr__(self, "flow", dataclasses.replace(self.flow, edge_mask=self.task == "depth"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> TrainConfig:
        """Raise BadArgumentsError naming the first field out of range; returns self."""
        multiple = 14 if self.task == "depth" else 8
        checks = [
            (self.task in ("depth", "normal"), "task", "must be 'depth' or 'normal'"),
            (self.data.frames >= 2, "data.frames", "must be >= 2 (L_stable needs frame pairs)"),
            (
                len(self.data.size) == 2 and all(s > 0 and s % multiple == 0 for s in self.data.size),
                "data.size",
                f"must be [height, width], multiples of {multiple} for {self.task}",
            ),
            (0 < self.data.scale[0] <= self.data.scale[1] <= 1, "data.scale", "must satisfy 0 < min <= max <= 1"),
            (bool(self.data.strides) and min(self.data.strides) >= 1, "data.strides", "must be steps >= 1"),
            (self.data.workers >= 0, "data.workers", "must be >= 0"),
            (self.flow.backend in ("dis", "raft-small", "raft-large"), "flow.backend", "must be dis, raft-small or raft-large"),
            (
                not (self.flow.edge_mask and self.task == "normal"),
                "flow.edge_mask",
                "must be false for task normal (the edge mask needs depth edges; normals have no depth)",
            ),
            (self.flow.cycle_tolerance >= 0, "flow.cycle_tolerance", "must be >= 0"),
            (self.loss.w_reg >= 0 and self.loss.w_stable >= 0, "loss", "weights must be >= 0"),
            (self.loss.stable_space in ("clip", "raw"), "loss.stable_space", "must be 'clip' or 'raw'"),
            (
                self.loss.stable_rotation in ("off", "video", "prior"),
                "loss.stable_rotation",
                "must be 'off', 'video' or 'prior'",
            ),
            (
                self.loss.stable_rotation == "off" or self.task == "normal",
                "loss.stable_rotation",
                "applies to normals only (depth does not turn with the camera)",
            ),
            (self.optim.lr > 0, "optim.lr", "must be > 0"),
            (self.optim.batch_size >= 1, "optim.batch_size", "must be >= 1"),
            (self.optim.iterations >= 1, "optim.iterations", "must be >= 1"),
            (self.optim.grad_clip >= 0, "optim.grad_clip", "must be >= 0"),
            (self.optim.schedule in ("constant", "cosine"), "optim.schedule", "must be 'constant' or 'cosine'"),
            (self.run.precision in ("bf16", "fp32"), "run.precision", "must be bf16 or fp32"),
            (self.run.decode_chunk >= 1, "run.decode_chunk", "must be >= 1"),
            (self.run.checkpoint_every >= 1, "run.checkpoint_every", "must be >= 1"),
            (self.run.keep_checkpoints >= 1, "run.keep_checkpoints", "must be >= 1"),
            (self.run.log_every >= 1, "run.log_every", "must be >= 1"),
            (not self.model.train_head or self.task == "depth", "model.train_head", "applies to depth only"),
        ]
        for ok, name, message in checks:
            if not ok:
                raise BadArgumentsError(f"config field {name} {message}")
        return self


_SECTIONS = {f.name: f.type for f in dataclasses.fields(TrainConfig)}


def _section_class(name: str) -> type | None:
    return {
        "model": ModelSection,
        "data": DataSection,
        "flow": FlowSection,
        "loss": LossSection,
        "optim": OptimSection,
        "run": RunSection,
    }.get(name)


def _coerce(value: Any, default: Any, where: str) -> Any:
    """`value` as the type of `default` (TOML arrays become tuples, ints are accepted as floats)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise BadArgumentsError(f"{where} must be true or false, got {value!r}")
        return value
    if isinstance(default, float) and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, tuple):
        if not isinstance(value, list | tuple):
            raise BadArgumentsError(f"{where} must be an array, got {value!r}")
        item = default[0] if default else value[0] if value else 0
        return tuple(_coerce(v, item, where) for v in value)
    if type(value) is not type(default):
        raise BadArgumentsError(f"{where} must be a {type(default).__name__}, got {value!r}")
    return value


def from_mapping(data: Mapping[str, Any], *, source: str) -> TrainConfig:
    """Build a config from nested mappings (a parsed TOML file); unknown keys are errors."""
    base = TrainConfig()
    top: dict[str, Any] = {}
    for key, value in data.items():
        section = _section_class(key)
        if section is None:
            if key not in _SECTIONS:
                raise BadArgumentsError(f"{source}: unknown key {key!r} (sections: {', '.join(_SECTIONS)})")
            top[key] = _coerce(value, getattr(base, key), f"{source}: {key}")
            continue
        if not isinstance(value, Mapping):
            raise BadArgumentsError(f"{source}: [{key}] must be a table")
        defaults = section()  # unresolved: by-task defaults follow the task read from `data`
        known = {f.name for f in dataclasses.fields(section)}
        fields = {}
        for name, item in value.items():
            if name not in known:
                raise BadArgumentsError(f"{source}: unknown key {key}.{name} (known: {', '.join(sorted(known))})")
            fields[name] = _coerce(item, getattr(getattr(base, key), name), f"{source}: {key}.{name}")
        top[key] = dataclasses.replace(defaults, **fields)
    return TrainConfig(**top)


def parse_override(text: str) -> tuple[list[str], Any]:
    """`section.key=value` -> (["section", "key"], value parsed as TOML, else the raw string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise BadArgumentsError(f"--set {text!r}: expected section.key=value")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return key.strip().split("."), value


def load_config(
    path: Path | None, overrides: Iterable[str] = (), values: Mapping[str, Any] | None = None
) -> TrainConfig:
    """Read `path` (TOML; None = the built-in defaults), apply `overrides` ("section.key=value"
    texts), then `values` (dotted key -> typed value, from explicit command-line flags), validate."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        if not path.is_file() and not path.is_absolute() and (CONFIGS_DIR / path).is_file():
            path = CONFIGS_DIR / path  # `--config depth.toml` names a shipped config
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise BadArgumentsError(f"config file {path} does not exist") from None
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise BadArgumentsError(f"config file {path} is not readable TOML: {exc}") from None
    assignments = [parse_override(text) for text in overrides]
    assignments += [(key.split("."), value) for key, value in (values or {}).items()]
    for keys, value in assignments:
        node = data
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise BadArgumentsError(f"override {'.'.join(keys)}: {key} is not a section")
        node[keys[-1]] = value
    return from_mapping(data, source=source).validate()


def to_toml(config: TrainConfig) -> str:
    """The config as TOML text (saved into the run folder, so a run records what it trained with)."""
    lines = [f'task = "{config.task}"', f"seed = {config.seed}"]
    for name in ("model", "data", "flow", "loss", "optim", "run"):
        lines += ["", f"[{name}]"]
        for key, value in dataclasses.asdict(getattr(config, name)).items():
            lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)
