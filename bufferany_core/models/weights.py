"""Where model weights come from: the registry of known weight files and their resolution.

Resolution order for a registered model: an explicit path, then a models folder
(`--models-dir` / `BUFFERANY_MODELS`), then the Hugging Face cache, then (only when allowed) a
download through huggingface_hub. `random[:SEED]` builds deterministic untrained weights instead.
"""

from __future__ import annotations

import hashlib
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bufferany_core.errors import BadArgumentsError, MissingWeightsError

MODELS_ENV = "BUFFERANY_MODELS"


@dataclass(frozen=True)
class WeightSpec:
    """One downloadable weight file (or diffusers folder) of a registered model."""

    name: str  # registry key, e.g. "depth-anything-v2-small"
    repo_id: str  # Hugging Face repository
    filename: str  # file inside the repository; "" for a whole diffusers folder
    licence: str
    kind: Literal["file", "folder"] = "file"
    size_bytes: int | None = None
    sha256: str | None = None

    @property
    def local_name(self) -> str:
        """Name under the models folder: the file name, or the repository's last part for folders."""
        return self.filename if self.kind == "file" else self.repo_id.rsplit("/", 1)[-1]


_REGISTRY: dict[str, WeightSpec] = {}


def register(spec: WeightSpec) -> WeightSpec:
    if spec.name in _REGISTRY and _REGISTRY[spec.name] != spec:
        raise ValueError(f"weights {spec.name!r} registered twice with different specs")
    _REGISTRY[spec.name] = spec
    return spec


def get_spec(name: str) -> WeightSpec:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise BadArgumentsError(f"unknown model {name!r}; known models: {known}") from None


def registered() -> dict[str, WeightSpec]:
    return dict(_REGISTRY)


@dataclass(frozen=True)
class RandomWeights:
    """`random[:SEED]`: deterministic untrained weights (tests, demos). Outputs are marked untrained."""

    seed: int = 0


def parse_weights_arg(value: str | os.PathLike[str] | None) -> Path | RandomWeights | None:
    """Parse a `--weights` value: None (resolve from the registry), a path, or `random[:SEED]`."""
    if value is None:
        return None
    text = os.fspath(value)
    if text == "random" or text.startswith("random:"):
        seed_text = text.partition(":")[2] or "0"
        try:
            return RandomWeights(int(seed_text))
        except ValueError:
            raise BadArgumentsError(f"--weights {text!r}: the seed after 'random:' must be an integer") from None
    return Path(text).expanduser()


def resolve(
    spec: WeightSpec,
    *,
    path: Path | None = None,
    models_dir: Path | None = None,
    allow_download: bool = False,
) -> Path:
    """Return the local path of a model's weights, or raise `MissingWeightsError` saying what to put where."""
    if path is not None:
        if not path.exists():
            raise MissingWeightsError(f"weights file {path} does not exist (model {spec.name})")
        return path
    folders = [models_dir] if models_dir is not None else []
    if os.environ.get(MODELS_ENV):
        folders.append(Path(os.environ[MODELS_ENV]))
    for folder in folders:
        candidate = folder.expanduser() / spec.local_name
        if candidate.exists():
            return candidate
    hub_path = _from_hub(spec, local_only=not allow_download)
    if hub_path is not None:
        return hub_path
    where = (
        f"{folders[0]}/{spec.local_name}"
        if folders
        else f"${MODELS_ENV}/{spec.local_name} (or in the folder given by --models-dir)"
    )
    what = f"file {spec.filename!r}" if spec.kind == "file" else "the diffusers folder"
    raise MissingWeightsError(
        f"weights for {spec.name} not found offline: put {what} from the Hugging Face repository "
        f"{spec.repo_id} at {where} (licence {spec.licence}), "
        f"or pass an explicit weights path, or `--weights random` for an untrained test run"
    )


def _from_hub(spec: WeightSpec, *, local_only: bool) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub is a declared dependency
        return None
    try:
        if spec.kind == "file":
            return Path(hf_hub_download(spec.repo_id, spec.filename, local_files_only=local_only))
        return Path(snapshot_download(spec.repo_id, local_files_only=local_only))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


def sha256_of(path: Path, *, chunk: int = 1 << 20) -> str:
    """sha256 of a weight file (or of a folder's files in sorted order), recorded in output headers."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    return digest.hexdigest()


def deterministic_tensor(name: str, shape: tuple[int, ...], *, seed: int = 0):
    """The reference rule for deterministic weights (../shared/reference/README.md), with a seed.

    Seed 0 reproduces the golden outputs exactly; other seeds give other, equally deterministic weights.
    """
    import torch

    g = torch.Generator().manual_seed((zlib.crc32(name.encode()) + seed) & 0xFFFFFFFF)
    last = name.rsplit(".", 1)[-1]
    if len(shape) >= 2 and last == "weight":
        return torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
    if len(shape) == 1 and last in ("weight", "gamma"):
        return 1.0 + 0.1 * torch.randn(shape, generator=g)
    if last == "bias":
        return 0.1 + 0.1 * torch.randn(shape, generator=g)
    return 0.1 * torch.randn(shape, generator=g)


def deterministic_state_dict(module, *, seed: int = 0, skip_prefixes: tuple[str, ...] = ()) -> dict:
    """A state dict for `module` filled with `deterministic_tensor` (buffers that are not
    floating-point parameters, e.g. integer counters, are kept as they are).

    Keys starting with one of `skip_prefixes` keep the module's own initialisation (e.g. the
    zero-initialised output projections of temporal blocks, so a random video model still starts
    as its image model)."""
    out = {}
    for key, value in module.state_dict().items():
        if value.is_floating_point() and not key.startswith(skip_prefixes):
            out[key] = deterministic_tensor(key, tuple(value.shape), seed=seed).to(value.dtype)
        else:
            out[key] = value.clone()
    return out


def state_dict_mismatch(module, state: dict) -> str | None:
    """What keeps `state` from loading strictly into `module` (missing, unexpected and wrongly
    shaped keys, counted, the first few named), or None when it fits."""
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != tuple(expected[k].shape))
    if not (missing or unexpected or wrong):
        return None
    return (
        f"{len(missing)} missing keys {missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}, "
        f"{len(wrong)} of the wrong shape {wrong[:3]}"
    )


def load_state_dict_file(path: Path) -> dict:
    """Load a `.pth` (weights_only, never arbitrary pickle) or `.safetensors` state dict on the CPU."""
    import torch

    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or pickled-code files
        raise MissingWeightsError(f"cannot load weights file {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BadArgumentsError(f"weights file {path} does not hold a state dict")
    return state
