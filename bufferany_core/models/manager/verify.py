"""`bufferany-models verify`: every found file against its pinned size and sha256, and each state
dict loaded strictly into the catalogue's architecture (built on the meta device: nothing runs, no
memory beyond the file's tensors)."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import torch
from torch import nn

from bufferany_core.errors import BufferanyError, MissingWeightsError
from bufferany_core.models.manager.inventory import ManagedModel, model_files
from bufferany_core.models.weights import (
    EMPTY_PROMPT_FILE,
    WeightSpec,
    check_checkpoint_folder,
    load_checkpoint,
    sha256_of,
    state_dict_mismatch,
    verify_file,
    verify_folder,
)

HOW_TO_CONFIRM = (
    "not pinned: compare with the `lfs.sha256` of `huggingface_hub.HfApi().get_paths_info(repo, paths)` "
    "(docs/models.md, Verifying weights)"
)


@dataclass
class Check:
    """The verdict on one file (or diffusers folder): ok, failed, or None when it was not found."""

    models: list[str]
    spec: WeightSpec
    path: Path | None
    ok: bool | None
    details: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.spec.filename if self.spec.kind == "file" else f"{self.spec.local_name}/"


def verify_models(models: list[ManagedModel], *, models_dir: Path | None = None) -> list[Check]:
    """Check every official file of `models` where a render would find it, each file once."""
    checks: dict[str, Check] = {}
    for model in models:
        for state in model_files(model, models_dir=models_dir):
            if state.spec.name in checks:
                checks[state.spec.name].models.append(model.name)
                continue
            check = Check([model.name], state.spec, state.path, None)
            checks[state.spec.name] = check
            if state.path is None:
                check.details.append("missing")
                continue
            try:
                if state.spec.kind == "file":
                    _verify_file(check, model, state.path)
                else:
                    _verify_folder(check, model, state.path, state.missing_parts)
            except BufferanyError as exc:
                check.ok = False
                check.details.append(str(exc))
            else:
                check.ok = check.ok is not False
    return list(checks.values())


def _verify_file(check: Check, model: ManagedModel, path: Path) -> None:
    verify_file(path, check.spec)  # size, then sha256 against the pinned values
    if check.spec.sha256:
        check.details.append(f"{os.path.getsize(path):,} bytes and sha256 match the pinned official values")
    else:
        check.details.append(f"sha256 {sha256_of(path)}; {HOW_TO_CONFIRM}")
    name, module = _architecture(model)
    _load_strictly(module, load_checkpoint(path, name=model.name), what=f"{path}", into=name)
    check.details.append(f"state dict loads strictly into {name}")


def _verify_folder(check: Check, model: ManagedModel, folder: Path, missing: tuple[str, ...]) -> None:
    if missing:
        check.ok = False
        check.details.append(f"incomplete: no {', '.join(missing)}")
    check_checkpoint_folder(folder, ("unet", "vae", "text_encoder"))  # LFS pointers, pages, truncation
    checked, unpinned = verify_folder(folder, check.spec)
    for relative in checked:
        check.details.append(f"{relative}: size and sha256 match the pinned official values")
    for file in unpinned:
        relative = file.relative_to(folder).as_posix()
        check.details.append(f"{relative} {os.path.getsize(file):,} bytes sha256 {sha256_of(file)}")
    if unpinned:
        check.details.append(HOW_TO_CONFIRM)
    _verify_folder_modules(check, model, folder)


def _verify_folder_modules(check: Check, model: ManagedModel, folder: Path) -> None:
    """The UNet and VAE state dicts loaded strictly into the catalogue's configuration of them, and
    the cached empty-prompt embedding's width checked against the UNet's cross-attention."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import load_file

    from bufferany_core.models.normal.configs import UNET_CONFIGS, VAE_CONFIGS

    size = model.size
    builders: dict[str, Callable[[], nn.Module]] = {
        "unet": lambda: cast(nn.Module, UNet2DConditionModel(**UNET_CONFIGS[size])),
        "vae": lambda: cast(nn.Module, AutoencoderKL(**VAE_CONFIGS[size])),
    }
    for sub, build in builders.items():
        weights = next(
            (folder / sub / n for n in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
             if (folder / sub / n).is_file()),
            None,
        )  # fmt: skip
        if weights is None:
            continue  # reported as incomplete
        with torch.device("meta"):
            module = build()
        into = f"the {size} {type(module).__name__} of {model.name}"
        _load_strictly(module, load_checkpoint(weights), what=str(weights), into=into)
        check.details.append(f"{sub}: state dict loads strictly into {into}")
    embedding_file = folder / EMPTY_PROMPT_FILE
    if embedding_file.is_file():
        tensors = load_file(str(embedding_file))
        width = UNET_CONFIGS[size]["cross_attention_dim"]
        embedding = tensors.get("embedding")
        if embedding is None or embedding.ndim != 3 or embedding.shape[-1] != width:
            shape = None if embedding is None else tuple(embedding.shape)
            raise MissingWeightsError(
                f"{embedding_file} holds no (1, tokens, {width}) embedding (found {shape}): delete it; "
                f"it is computed again from the text encoder"
            )
        check.details.append(f"{EMPTY_PROMPT_FILE}: empty-prompt embedding {tuple(embedding.shape)} (no text encoder needed)")


def _architecture(model: ManagedModel) -> tuple[str, nn.Module]:
    """The module a single-file model's weights load into, built on the meta device."""
    with torch.device("meta"):
        if model.family == "flow":
            from bufferany_core.flow.backends import build_raft

            return f"torchvision's {model.name}", build_raft(model.name)
        from bufferany_core.models.depth import BufferAnytimeDepth, build_depth_model

        module = build_depth_model(model.name)
    if isinstance(module, BufferAnytimeDepth):
        return f"the {model.size} Depth Anything V2 prior of {model.name}", module.prior
    return f"{model.name} ({model.size})", module


def _load_strictly(module: nn.Module, state: dict, *, what: str, into: str) -> None:
    mismatch = state_dict_mismatch(module, state)
    if mismatch is not None:
        raise MissingWeightsError(f"{what} does not fit {into}: {mismatch}")
    try:
        module.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        raise MissingWeightsError(f"{what} does not load into {into}: {str(exc).splitlines()[0]}") from exc
