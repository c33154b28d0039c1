"""Which models there are, which files each needs, where those are found, and fetching them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bufferany_core.errors import BadArgumentsError, BufferanyError, MissingWeightsError
from bufferany_core.flow.backends import RAFT_WEIGHTS
from bufferany_core.models import catalog
from bufferany_core.models.catalog import ModelEntry
from bufferany_core.models.weights import (
    DIFFUSERS_FOLDER_PARTS,
    EMPTY_PROMPT_FILE,
    WeightSpec,
    download_spec,
    folder_missing,
    get_spec,
    locate,
    verify_file,
    verify_folder,
)

# The stabiliser's optical flow: RAFT large when its weights are found, OpenCV's DIS otherwise, so
# `download --defaults` fetches it with the two passes' default models.
DEFAULT_FLOW = "raft-large"


@dataclass(frozen=True)
class ManagedModel:
    """One model `bufferany-models` knows: a catalogue entry or an optical-flow model."""

    name: str
    family: str  # "depth", "normal" or "flow"
    size: str
    specs: tuple[WeightSpec, ...]  # its official weights; () for test models with random weights only
    default: bool
    entry: ModelEntry | None = None  # None for flow models

    @property
    def licence(self) -> str:
        return "; ".join(dict.fromkeys(s.licence for s in self.specs)) or "-"

    @property
    def random_only(self) -> bool:
        return not self.specs


def all_models() -> list[ManagedModel]:
    """Every depth and normal model of the catalogues, then the flow models, defaults marked."""
    models = [
        ManagedModel(
            name=entry.name,
            family=family,
            size=entry.size,
            specs=tuple(get_spec(n) for n in entry.weights or ()),
            default=catalog.DEFAULT_MODELS[family] == entry.name,
            entry=entry,
        )
        for family, entries in catalog.CATALOGUES.items()
        for entry in entries.values()
    ]
    models += [
        ManagedModel(name=name, family="flow", size=name.split("-", 1)[1], specs=(spec,), default=name == DEFAULT_FLOW)
        for name, spec in RAFT_WEIGHTS.items()
    ]
    return models


def select_models(names: list[str], *, defaults: bool = False, downloadable: bool = False) -> list[ManagedModel]:
    """The models named (any order, each once), plus the defaults with `defaults`. Unknown names are
    refused with the known ones; with `downloadable`, so are test models without official weights."""
    known = {m.name: m for m in all_models()}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BadArgumentsError(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(known)}")
    chosen = [m for m in known.values() if m.default] if defaults else []
    chosen += [known[n] for n in names if known[n] not in chosen]
    if downloadable:
        random_only = [m.name for m in chosen if m.random_only]
        if random_only:
            raise BadArgumentsError(
                f"{', '.join(random_only)}: test model(s) with random weights only (`--weights random`); "
                f"nothing to download"
            )
    return chosen


# -- where each file is ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FileState:
    """One file (or diffusers folder) of a model and where it was found."""

    spec: WeightSpec
    path: Path | None  # None: missing
    source: str | None  # "--models-dir", "$BUFFERANY_MODELS", "Hugging Face cache"
    missing_parts: tuple[str, ...] = ()  # inside a diffusers folder found incomplete (or all, when missing)

    @property
    def complete(self) -> bool:
        return self.path is not None and not self.missing_parts

    @property
    def label(self) -> str:
        return self.spec.filename if self.spec.kind == "file" else f"{self.spec.local_name}/"


def model_files(model: ManagedModel, *, models_dir: Path | None = None) -> list[FileState]:
    """Where each of `model`'s files is found offline (the render's rule: `weights.locate`)."""
    states = []
    for spec in model.specs:
        found = locate(spec, models_dir=models_dir)
        if spec.kind == "file":
            states.append(FileState(spec, None if found is None else found.path, None if found is None else found.source))
            continue
        folder = found.path if found is not None and found.path.is_dir() else None
        states.append(
            FileState(
                spec,
                folder,
                None if folder is None or found is None else found.source,
                tuple(folder_missing(folder)),
            )
        )
    return states


# -- licences and downloads ------------------------------------------------------------------------


def licence_problems(models: list[ManagedModel], accepted: list[str]) -> list[str]:
    """One line per non-commercial weight file whose licence is not in `accepted` (case-insensitive)."""
    ok = {a.strip().lower() for a in accepted}
    lines = []
    for model in models:
        for spec in model.specs:
            if spec.non_commercial and spec.licence.lower() not in ok:
                lines.append(
                    f"{model.name}: {spec.filename or spec.local_name} is licensed {spec.licence} "
                    f"(non-commercial use only; read {spec.page}): pass --accept-licence {spec.licence} to download it"
                )
    return lines


@dataclass
class Downloaded:
    spec: WeightSpec
    path: Path | None
    notes: list[str]
    error: str | None = None


def download_models(
    models: list[ManagedModel],
    *,
    to: Path | None = None,
    accepted: tuple[str, ...] | list[str] = (),
    say: Callable[[str], None] = print,
) -> list[Downloaded]:
    """Fetch every official file `models` need (each once) into the Hugging Face cache or the models
    folder `to`, check each against its pinned size and sha256, and cache the normal prior's
    empty-prompt embedding in its folder (renders then need no text encoder). Licences are checked
    first: a non-commercial one not in `accepted` refuses the whole download (BadArgumentsError).
    A file that fails does not stop the others; the results say which did."""
    problems = licence_problems(models, list(accepted))
    if problems:
        raise BadArgumentsError("nothing downloaded: non-commercial licence not accepted\n  " + "\n  ".join(problems))
    specs = list({s.name: s for m in models for s in m.specs}.values())
    results = []
    for spec in specs:
        what = spec.filename if spec.kind == "file" else f"{spec.local_name}/ (the parts bufferany reads)"
        say(f"Downloading {what} from {spec.repo_id} (licence {spec.licence})")
        try:
            path = download_spec(spec, to=to)
            notes = _check_download(spec, path)
        except BufferanyError as exc:
            results.append(Downloaded(spec, None, [], str(exc)))
            say(f"  FAILED: {exc}")
            continue
        results.append(Downloaded(spec, path, notes))
        say(f"  -> {path}")
        for note in notes:
            say(f"     {note}")
    return results


def _check_download(spec: WeightSpec, path: Path) -> list[str]:
    """Pinned size and sha256 of a fetched file; a fetched folder's completeness and its cached
    empty-prompt embedding."""
    if spec.kind == "file":
        verify_file(path, spec)
        return ["size and sha256 match the pinned official values" if spec.sha256 else "not pinned: unverified"]
    missing = folder_missing(path, text=not (path / EMPTY_PROMPT_FILE).is_file())
    if missing:
        raise MissingWeightsError(f"{path}: the repository {spec.repo_id} has no {', '.join(missing)}")
    checked, unpinned = verify_folder(path, spec)
    notes = [f"{', '.join(checked)}: size and sha256 match the pinned official values"] if checked else []
    if unpinned:
        notes.append(f"{len(unpinned)} weight file(s) without pinned hashes: `bufferany-models verify` prints theirs")
    return [*notes, _cache_empty_prompt(path)]


def _cache_empty_prompt(folder: Path) -> str:
    """Compute the empty-prompt embedding once with the folder's text encoder and keep it in the
    folder (`models.normal.text_embedding`), so a farm's shared copy needs no text encoder."""
    from bufferany_core.models.normal.text_embedding import CACHE_NAME, cache_paths, empty_prompt_embedding

    assert CACHE_NAME == EMPTY_PROMPT_FILE
    empty_prompt_embedding(folder)
    where = next((p for p in cache_paths(folder) if p.is_file()), None)
    if where == folder / CACHE_NAME:
        text_parts = [p.names[0] for p in DIFFUSERS_FOLDER_PARTS if p.text]
        return (
            f"empty-prompt embedding cached as {where}: renders no longer read "
            f"{', '.join(sorted({t.split('/')[0] + '/' for t in text_parts}))}"
        )
    return f"empty-prompt embedding cached in {where} (the folder is read-only): renders elsewhere need the text encoder"
