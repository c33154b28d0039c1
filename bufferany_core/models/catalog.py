"""Every model by name, for both passes: what it is, which official weights it needs, and how the
pipeline schedules it. Reading the catalogue loads no weights and imports no torch, so dry runs,
farm planning and argument checks can use it before any model is built.

Both families have the same shape: `DEPTH_MODELS` and `NORMAL_MODELS` map names to `ModelEntry`s,
`DEFAULT_MODELS` names each pass's default, `get_model_entry(pass_name, name)` looks one up.
The family packages build the modules (`build_depth_model`, `build_normal_model`) and load them
(`load_depth_predictor`, `load_normal_predictor`) from these entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bufferany_core.errors import BadArgumentsError
from bufferany_core.models.weights import WeightSpec, get_spec, register

PassName = Literal["depth", "normal"]
# "image": one frame at a time; the others carry temporal layers (see ModelEntry.video).
Architecture = Literal["image", "video-depth-anything", "buffer-anytime"]


@dataclass(frozen=True, kw_only=True)
class ModelSchedule:
    """How the pipeline feeds a model: windows of `window` frames, consecutive windows sharing
    `overlap` frames; `max_frames` is the most the network takes at once (the length of its temporal
    positional encoding), None for image models, which take any number of frames one by one."""

    window: int
    overlap: int
    max_frames: int | None

    def __post_init__(self) -> None:
        if self.window < 1 or not 0 <= self.overlap < self.window:
            raise ValueError(f"schedule needs window >= 1 and 0 <= overlap < window, got {self}")
        if self.max_frames is not None and self.max_frames < self.window:
            raise ValueError(f"schedule's window {self.window} exceeds max_frames {self.max_frames}")


@dataclass(frozen=True, kw_only=True)
class ModelEntry:
    """One model of the catalogue.

    `size` names the family's architecture table (depth: `depth_anything.SIZES`; normals:
    `normal.configs.UNET_CONFIGS`). `weights` are the registry names of the official weight specs
    it loads (the prior's, for buffer-anytime models), None for tiny test models that only take
    random weights. `processing_size` is the default resolution the frames are resized to, and its
    meaning is the family's: depth, a bound on the SHORT side (Depth Anything's "lower_bound" resize,
    sides rounded up to multiples of 14); normals, the LONG edge (Marigold's resize; 0 keeps the
    plate size). `trained_temporal` says whether the official weights bring trained temporal layers
    (Video Depth Anything); buffer-anytime layers start at zero and need a studio's
    `--temporal-weights` (`bufferany-train`) to do anything.
    """

    name: str
    family: PassName
    architecture: Architecture
    size: str
    weights: tuple[str, ...] | None
    schedule: ModelSchedule
    processing_size: int
    trained_temporal: bool

    def __post_init__(self) -> None:
        if (self.schedule.max_frames is None) == self.video:
            raise ValueError(f"{self.name}: max_frames must be set exactly for models with temporal layers")
        if self.trained_temporal and not self.video:
            raise ValueError(f"{self.name}: an image model has no temporal layers to come trained")

    @property
    def video(self) -> bool:
        """Whether the model has temporal layers (attends across the frames of a window)."""
        return self.architecture != "image"

    @property
    def licence(self) -> str | None:
        """The licences of its official weights (None for random-only test models)."""
        if self.weights is None:
            return None
        return "; ".join(dict.fromkeys(get_spec(name).licence for name in self.weights))


# -- official weights ------------------------------------------------------------------------------

for _spec in (
    WeightSpec(
        "depth-anything-v2-small",
        "depth-anything/Depth-Anything-V2-Small",
        "depth_anything_v2_vits.pth",
        "Apache-2.0",
    ),
    WeightSpec(
        "depth-anything-v2-base",
        "depth-anything/Depth-Anything-V2-Base",
        "depth_anything_v2_vitb.pth",
        "CC-BY-NC-4.0",
    ),
    WeightSpec(
        "depth-anything-v2-large",
        "depth-anything/Depth-Anything-V2-Large",
        "depth_anything_v2_vitl.pth",
        "CC-BY-NC-4.0",
    ),
    WeightSpec(
        "video-depth-anything-small",
        "depth-anything/Video-Depth-Anything-Small",
        "video_depth_anything_vits.pth",
        "Apache-2.0",
    ),
    # The whole diffusers folder (unet/, vae/, scheduler/, text_encoder/, tokenizer/; about 5 GB in
    # float32). The weights derive from Stable Diffusion 2, whose CreativeML Open RAIL++-M use
    # restrictions carry over; the model card's own licence could not be checked offline (docs/models.md).
    WeightSpec(
        name="marigold-e2e-ft-normals",
        repo_id="GonzaloMG/marigold-e2e-ft-normals",
        filename="",
        licence="CreativeML Open RAIL++-M (derived from Stable Diffusion 2; confirm on the model card)",
        kind="folder",
    ),
):
    register(_spec)

# -- the two catalogues ----------------------------------------------------------------------------

# Depth: Video Depth Anything's inference scheme, windows of 32 frames (its training length and
# temporal encoding) with 10 shared with the previous window. Image models get the same windows, so a
# shot's scale and shift are aligned the same way whichever depth model runs. Buffer Anytime's depth
# blocks encode up to 128 frames (the paper trains on up to 110).
_DEPTH_IMAGE = ModelSchedule(window=32, overlap=10, max_frames=None)
_VIDEO_DEPTH_ANYTHING = ModelSchedule(window=32, overlap=10, max_frames=32)
_BUFFER_ANYTIME_DEPTH = ModelSchedule(window=32, overlap=10, max_frames=128)
# Normals: the paper trains on up to 32 frames. The image prior predicts frames independently:
# nothing to align, so no overlap.
_NORMAL_IMAGE = ModelSchedule(window=32, overlap=0, max_frames=None)
_BUFFER_ANYTIME_NORMAL = ModelSchedule(window=32, overlap=8, max_frames=32)

_Row = tuple[str, Architecture, str, "str | None", ModelSchedule]


def _catalogue(family: PassName, *, processing_size: int, rows: tuple[_Row, ...]) -> dict[str, ModelEntry]:
    """One family's entries from (name, architecture, size, official weights or None, schedule) rows."""
    return {
        name: ModelEntry(
            name=name,
            family=family,
            architecture=architecture,
            size=size,
            weights=None if weights is None else (weights,),
            schedule=schedule,
            processing_size=processing_size,
            # Only Video Depth Anything's official weights bring trained temporal layers.
            trained_temporal=architecture == "video-depth-anything",
        )
        for name, architecture, size, weights, schedule in rows
    }


DEPTH_MODELS = _catalogue(
    "depth",
    processing_size=518,  # Depth Anything V2's short side (37 patches of 14)
    rows=(
        ("depth-anything-v2-small", "image", "vits", "depth-anything-v2-small", _DEPTH_IMAGE),
        ("depth-anything-v2-base", "image", "vitb", "depth-anything-v2-base", _DEPTH_IMAGE),
        ("depth-anything-v2-large", "image", "vitl", "depth-anything-v2-large", _DEPTH_IMAGE),
        ("depth-anything-v2-tiny", "image", "tiny", None, _DEPTH_IMAGE),
        (
            "video-depth-anything-small",
            "video-depth-anything",
            "vits",
            "video-depth-anything-small",
            _VIDEO_DEPTH_ANYTHING,
        ),
        ("video-depth-anything-tiny", "video-depth-anything", "tiny", None, _VIDEO_DEPTH_ANYTHING),
        ("buffer-anytime-depth-small", "buffer-anytime", "vits", "depth-anything-v2-small", _BUFFER_ANYTIME_DEPTH),
        ("buffer-anytime-depth-base", "buffer-anytime", "vitb", "depth-anything-v2-base", _BUFFER_ANYTIME_DEPTH),
        ("buffer-anytime-depth-large", "buffer-anytime", "vitl", "depth-anything-v2-large", _BUFFER_ANYTIME_DEPTH),
        ("buffer-anytime-depth-tiny", "buffer-anytime", "tiny", None, _BUFFER_ANYTIME_DEPTH),
    ),
)

NORMAL_MODELS = _catalogue(
    "normal",
    processing_size=768,  # Marigold-E2E-FT's long edge
    rows=(
        ("marigold-e2e-ft-normals", "image", "sd2", "marigold-e2e-ft-normals", _NORMAL_IMAGE),
        ("buffer-anytime-normal", "buffer-anytime", "sd2", "marigold-e2e-ft-normals", _BUFFER_ANYTIME_NORMAL),
        ("marigold-e2e-ft-normals-tiny", "image", "tiny", None, _NORMAL_IMAGE),
        ("buffer-anytime-normal-tiny", "buffer-anytime", "tiny", None, _BUFFER_ANYTIME_NORMAL),
    ),
)

# -- lookup ----------------------------------------------------------------------------------------

DEFAULT_MODELS: dict[PassName, str] = {"depth": "video-depth-anything-small", "normal": "buffer-anytime-normal"}
CATALOGUES: dict[PassName, dict[str, ModelEntry]] = {"depth": DEPTH_MODELS, "normal": NORMAL_MODELS}


def get_model_entry(pass_name: str, name: str | None) -> ModelEntry:
    """The catalogue entry of `name` for `pass_name` ("depth" or "normal"); None gives the pass's
    default model. Unknown passes or names raise BadArgumentsError listing the known ones."""
    if pass_name not in CATALOGUES:
        raise BadArgumentsError(f"unknown pass {pass_name!r}; known: {', '.join(CATALOGUES)}")
    catalogue = CATALOGUES[pass_name]  # type: ignore[index]
    name = DEFAULT_MODELS[pass_name] if name is None else name  # type: ignore[index]
    if name not in catalogue:
        raise BadArgumentsError(f"unknown {pass_name} model {name!r}; known: {', '.join(catalogue)}")
    return catalogue[name]
