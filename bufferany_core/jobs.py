"""A render job as hosts, the service and the CLI describe it (standard library only).

The service's `submit` message carries these fields; `bufferany-render` builds the same object
from its arguments; the pipeline runs it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from bufferany_core.conventions import DEFAULT_DEPTH_CONVENTION, DepthConvention
from bufferany_core.errors import BadArgumentsError

PASSES = ("depth", "normal")
DEPTH_CONVENTIONS = tuple(convention.value for convention in DepthConvention)
PRECISIONS = ("auto", "fp32", "fp16", "bf16")  # auto: fp16 on CUDA, fp32 on the CPU


@dataclass
class RenderJob:
    input: str  # any sequence form, a single frame of a sequence, or a movie file
    output: str | None = None  # output sequence pattern; None: `<name>_buffers.####.exr` beside the input
    frames: str | None = None  # frame spec (Nuke/Deadline meaning); None: the whole input
    shot_range: str | None = None  # the whole shot when `frames` is a farm chunk of it
    passes: tuple[str, ...] = PASSES
    depth_model: str | None = None  # registry name; None: the default
    normal_model: str | None = None
    weights: str | None = None  # a path, or `random[:SEED]`; None: resolve from the registry
    depth_temporal_weights: str | None = None  # trained temporal layers (`bufferany-train`) on top of `weights`
    normal_temporal_weights: str | None = None
    models_dir: str | None = None
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    precision: str = "auto"  # auto | fp32 | fp16 | bf16 (half floats: CUDA only)
    input_colorspace: str | None = None  # None: the documented default
    depth_convention: str = DEFAULT_DEPTH_CONVENTION.value  # one of DEPTH_CONVENTIONS
    stabilize: bool = False
    include_plate: bool = False  # also carry the plate's RGBA into the output
    overwrite: bool = False
    options: dict[str, Any] = field(default_factory=dict)  # model-specific extras (window, overlap, ...)

    def __post_init__(self) -> None:
        if not self.input:
            raise BadArgumentsError("job field 'input' must name a file or sequence")
        self.passes = tuple(self.passes)
        unknown = [p for p in self.passes if p not in PASSES]
        if unknown or not self.passes:
            raise BadArgumentsError(f"job field 'passes' must be a non-empty subset of {PASSES}, got {list(self.passes)}")
        if self.depth_convention not in DEPTH_CONVENTIONS:
            raise BadArgumentsError(f"job field 'depth_convention' must be one of {', '.join(DEPTH_CONVENTIONS)}, got {self.depth_convention!r}")
        if self.precision not in PRECISIONS:
            raise BadArgumentsError(f"job field 'precision' must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["passes"] = list(self.passes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RenderJob:
        if not isinstance(data, dict):
            raise BadArgumentsError("a job must be a JSON object")
        known = {f.name for f in fields(cls)}
        extra = sorted(set(data) - known)
        if extra:
            raise BadArgumentsError(f"unknown job field(s): {', '.join(extra)}")
        return cls(**data)
