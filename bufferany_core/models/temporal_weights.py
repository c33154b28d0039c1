"""Temporal weights on disk, one format for both families.

`NAME.safetensors` holds only what training changed (the temporal layers, and the depth model's head
copy when it trains); the prior's weights are never copied into it, they keep coming from the
official checkpoints. `NAME.json` beside it says what rebuilds the module and where it came from:

    {"format": "bufferany/temporal-weights", "format_version": 2, "family": "depth" | "normal",
     "config": {...the family's temporal config...},
     "provenance": {"prior_sha256": ... or null for random prior weights,
                    "temporal_sha256": sha256 of NAME.safetensors, ...training's fields}}

The two hashes are kept apart: the prior's says which official file the layers were trained on, the
temporal one ties the JSON to its `.safetensors` (a pair not written together is refused).
Files written before `format_version` existed (version 1: the depth and normal formats of the first
build) are still read.

A model saved or loaded here provides `family`, `temporal_config()` (JSON-able dict),
`temporal_state_dict()` and `load_temporal_state_dict(state)` (ValueError when it does not fit).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from bufferany_core.atomic import atomic_write
from bufferany_core.errors import BadArgumentsError, MissingWeightsError, OutputNotWritableError
from bufferany_core.models.catalog import CATALOGUES, PassName
from bufferany_core.models.weights import sha256_of

FORMAT = "bufferany/temporal-weights"
FORMAT_VERSION = 2
# Version 1 had one format name per family and the config's fields at the top level.
_V1_FORMATS: dict[str, tuple[PassName, tuple[str, ...]]] = {
    "bufferany/buffer-anytime-depth": ("depth", ("prior_size", "temporal", "insert_after", "train_head")),
    "bufferany-normal-temporal": ("normal", ("temporal", "insertion_points")),
}
_HASHES = ("prior_sha256", "temporal_sha256")


class TemporalModel(Protocol):
    family: str

    def temporal_config(self) -> dict: ...

    def temporal_state_dict(self) -> dict[str, torch.Tensor]: ...

    def load_temporal_state_dict(self, state: Mapping[str, torch.Tensor]) -> None: ...


@dataclass(frozen=True, kw_only=True)
class TemporalWeights:
    """A temporal weights file as read: its family's config, the tensors (CPU) and provenance."""

    path: Path
    format_version: int
    family: PassName
    config: dict[str, Any]
    state: dict[str, torch.Tensor]
    provenance: dict[str, Any]  # prior_sha256, temporal_sha256 and whatever training recorded

    @property
    def prior_sha256(self) -> str | None:
        return self.provenance.get("prior_sha256")

    @property
    def temporal_sha256(self) -> str:
        return self.provenance["temporal_sha256"]

    def load_into(self, model: TemporalModel) -> None:
        """Load the tensors into `model` strictly, after checking that they are its family's and
        that they were saved for the same temporal configuration."""
        if model.family != self.family:
            raise BadArgumentsError(f"temporal weights {self.path} are {self.family} weights, not {model.family}")
        expected = json.loads(json.dumps(model.temporal_config()))  # as JSON reads it back: lists, not tuples
        if expected != self.config:
            raise BadArgumentsError(
                f"temporal weights {self.path} were saved for other temporal blocks: {self.config}; "
                f"this model has {expected}"
            )
        try:
            model.load_temporal_state_dict(self.state)
        except ValueError as exc:
            raise BadArgumentsError(f"temporal weights {self.path} do not fit the model: {exc}") from None


def config_path(weights_path: Path) -> Path:
    return Path(weights_path).with_suffix(".json")


def save_temporal_weights(
    path: Path, model: TemporalModel, *, prior_sha256: str | None, provenance: Mapping[str, Any] | None = None
) -> TemporalWeights:
    """Write `model`'s temporal part to `path` (.safetensors) and its JSON beside it, each atomically.

    `prior_sha256`: the prior weights the layers were trained on (None for random ones); `provenance`:
    more JSON-able fields to record (e.g. training's step count and data folder). The `.safetensors`
    is written first and the JSON records its hash, so a run killed between the two leaves a pair
    that `read_temporal_weights` refuses rather than one that silently disagrees."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise BadArgumentsError(f"temporal weights must be written as .safetensors, got {path}")
    clashes = sorted(set(provenance or {}) & set(_HASHES))
    if clashes:
        raise ValueError(f"provenance fields {clashes} are computed here, not passed in")
    if model.family not in CATALOGUES:
        raise ValueError(f"model family {model.family!r} is not one of {sorted(CATALOGUES)}")
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.temporal_state_dict().items()}
    try:
        atomic_write(path, lambda tmp: save_file(tensors, str(tmp)))
        weights = TemporalWeights(
            path=path,
            format_version=FORMAT_VERSION,
            family=model.family,  # type: ignore[arg-type]  # checked above
            config=json.loads(json.dumps(model.temporal_config())),
            state=tensors,
            provenance={**(provenance or {}), "prior_sha256": prior_sha256, "temporal_sha256": sha256_of(path)},
        )
        document = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "family": weights.family,
            "config": weights.config,
            "provenance": weights.provenance,
        }
        atomic_write(config_path(path), lambda tmp: tmp.write_text(json.dumps(document, indent=2) + "\n"))
    except OSError as exc:
        raise OutputNotWritableError(f"cannot write temporal weights {path}: {exc}") from exc
    return weights


def read_temporal_weights(path: Path, *, family: PassName) -> TemporalWeights:
    """Read a file pair written by `save_temporal_weights` (or the version-1 writers) for `family`."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise MissingWeightsError(f"temporal weights file {path} does not exist")
    if path.suffix != ".safetensors":
        raise BadArgumentsError(f"temporal weights {path} must be a .safetensors file")
    json_path = config_path(path)
    if not json_path.is_file():
        raise MissingWeightsError(f"temporal weights {path} have no config beside them: expected {json_path}")
    try:
        document = json.loads(json_path.read_text())
    except (OSError, ValueError) as exc:
        raise BadArgumentsError(f"temporal weights config {json_path} is not readable JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise BadArgumentsError(f"temporal weights config {json_path} must hold a JSON object")
    version, found_family, config, provenance = _parse(document, json_path)
    if found_family != family:
        raise BadArgumentsError(f"temporal weights {path} are {found_family} weights, not {family}")
    actual = sha256_of(path)
    recorded = provenance.setdefault("temporal_sha256", actual)  # version 1 recorded none
    if recorded != actual:
        raise BadArgumentsError(
            f"temporal weights {path} (sha256 {actual}) are not the file {json_path} describes "
            f"(sha256 {recorded}): the pair was not written together"
        )
    try:
        state = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as exc:
        raise BadArgumentsError(f"temporal weights {path} are not a readable safetensors file: {exc}") from exc
    return TemporalWeights(
        path=path, format_version=version, family=family, config=config, state=state, provenance=provenance
    )


def load_temporal_weights(path: Path, model: TemporalModel) -> TemporalWeights:
    """Read `path` and load it into `model` (see `TemporalWeights.load_into`)."""
    weights = read_temporal_weights(path, family=model.family)  # type: ignore[arg-type]
    weights.load_into(model)
    return weights


def _parse(document: dict, json_path: Path) -> tuple[int, PassName, dict, dict]:
    """(format version, family, config, provenance) of a JSON document of either version."""
    if document.get("format") in _V1_FORMATS and "format_version" not in document:
        family, config_keys = _V1_FORMATS[document["format"]]
        missing = [k for k in config_keys if k not in document]
        if missing:
            raise BadArgumentsError(f"{json_path}: version-1 temporal weights config lacks fields {missing}")
        rest = {k: v for k, v in document.items() if k not in config_keys and k not in ("format", "version")}
        return 1, family, {k: document[k] for k in config_keys}, rest
    if document.get("format") != FORMAT:
        raise BadArgumentsError(
            f"{json_path}: field 'format' must be {FORMAT!r}, got {document.get('format')!r} "
            f"(not a bufferany temporal weights config)"
        )
    if document.get("format_version") != FORMAT_VERSION:
        raise BadArgumentsError(
            f"{json_path}: format_version {document.get('format_version')!r} is not one this version of "
            f"bufferany reads (1 or {FORMAT_VERSION}): update bufferany"
        )
    named, config, provenance = document.get("family"), document.get("config"), document.get("provenance")
    if named != "depth" and named != "normal":
        raise BadArgumentsError(f"{json_path}: field 'family' must be one of {sorted(CATALOGUES)}, got {named!r}")
    if not isinstance(config, dict) or not isinstance(provenance, dict) or "temporal_sha256" not in provenance:
        raise BadArgumentsError(
            f"{json_path}: fields 'config' (object) and 'provenance' (object with temporal_sha256) are required"
        )
    return FORMAT_VERSION, named, config, provenance
