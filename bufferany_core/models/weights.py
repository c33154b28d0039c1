"""Where model weights come from: the registry of known weight files and their resolution.

Resolution order for a registered model: an explicit path, then a models folder
(`--models-dir` / `BUFFERANY_MODELS`), then the Hugging Face cache, then (only when allowed) a
download through huggingface_hub. `random[:SEED]` builds deterministic untrained weights instead.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bufferany_core.atomic import atomic_write
from bufferany_core.errors import BadArgumentsError, BufferanyError, MissingWeightsError
from bufferany_core.jobs import is_random_weights

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

    @property
    def non_commercial(self) -> bool:
        """Whether the licence forbids commercial use (Creative Commons "NC" licences):
        `bufferany-models download` then needs `--accept-licence LICENCE`."""
        return "-NC" in self.licence.upper()

    @property
    def page(self) -> str:
        """The repository's page on the Hugging Face hub (licence, model card)."""
        return f"https://huggingface.co/{self.repo_id}"


# Size and sha256 of the official files, pinned here (one table, whoever registers the spec) from
# the Git LFS pointers of the Hugging Face repositories: `oid sha256:<hash>` and `size <bytes>`, as
# shown on each file's page ("Git LFS Details") and in the commit that uploaded it. `register` fills
# them into specs that leave size_bytes/sha256 unset. Files not listed load unverified (docs/models.md,
# "Verifying weights", says how to look a value up with network access before adding it).
PINNED: dict[tuple[str, str], tuple[int, str]] = {
    # huggingface.co/depth-anything/Depth-Anything-V2-Small/commit/65ae6e3ee054faf5f2a0b3d079fbf181aaad86a0
    # (the upload; later commits only renamed the file). The same pair is pinned by third-party
    # installers downloading from this repository at a fixed revision.
    ("depth-anything/Depth-Anything-V2-Small", "depth_anything_v2_vits.pth"): (
        99_218_434,
        "715fade13be8f229f8a70cc02066f656f2423a59effd0579197bbf57860e1378",
    ),
    # huggingface.co/depth-anything/Depth-Anything-V2-Base/commit/f11825d6a03793a70dfb594c89a0e990986de230
    ("depth-anything/Depth-Anything-V2-Base", "depth_anything_v2_vitb.pth"): (
        389_961_218,
        "0d2b7002e62d39d655571c371333340bd88f67ab95050c03591555aa05645328",
    ),
    # The repository's own pointer page was not among the stored pages; the pair is the one pinned by
    # third-party installers that download depth-anything/Depth-Anything-V2-Large at a fixed revision
    # (cbbb86a30ce19b5684b7a05155dc7e6cbc7685b9) and by Hugging Face mirrors of the file (size
    # 1,341,395,338 and this hash in each).
    ("depth-anything/Depth-Anything-V2-Large", "depth_anything_v2_vitl.pth"): (
        1_341_395_338,
        "a7ea19fa0ed99244e67b624c72b8580b7e9553043245905be58796a608eb9345",
    ),
    # sha256: huggingface.co/depth-anything/Video-Depth-Anything-Small/blob/refs%2Fpr%2F1/video_depth_anything_vits.pth
    # (uploaded in a396fdd839642f9bb4d08d54cae9fbf43ca13388); the page rounds the size to 116 MB, the
    # exact 116,440,756 bytes are those pinned with this hash by projects downloading the file from
    # that repository (e.g. at revision 256875362cff76724b920335dfb4b29dd611f66e).
    ("depth-anything/Video-Depth-Anything-Small", "video_depth_anything_vits.pth"): (
        116_440_756,
        "13379300b739e659f076a59d52e9801bd8d38c541a7e71f73bbca4dcfb013609",
    ),
    # huggingface.co/hr16/RAFT-v2/commit/eaa9b8025e8af899e64b1c72f38bc3c74e54b711: torchvision's V2 RAFT
    # checkpoints. Each hash starts with the 8 hex digits torchvision puts in the file name (torch.hub's
    # check_hash prefix: ff5fadd5, 01064c6d), so these are torchvision's own files.
    ("hr16/RAFT-v2", "raft_large_C_T_SKHT_V2-ff5fadd5.pth"): (
        21_106_607,
        "ff5fadd56d26b40647388883af1547351ea17868b765c05b27231e72dd16a322",
    ),
    ("hr16/RAFT-v2", "raft_small_C_T_V2-01064c6d.pth"): (
        4_006_189,
        "01064c6dba73b0fc9fc8edf772248560a00a3acfd62ac6677e9eeebad9680e27",
    ),
}

_REGISTRY: dict[str, WeightSpec] = {}


def register(spec: WeightSpec) -> WeightSpec:
    """Add `spec` to the registry (with its `PINNED` size and sha256 unless it sets its own) and
    return the registered spec."""
    pinned = PINNED.get((spec.repo_id, spec.filename))
    if pinned is not None:
        size, sha = pinned
        if (spec.size_bytes not in (None, size)) or (spec.sha256 not in (None, sha)):
            raise ValueError(f"weights {spec.name!r}: size/sha256 differ from the pinned official values")
        spec = dataclasses.replace(spec, size_bytes=size, sha256=sha)
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
    if is_random_weights(text):
        seed_text = text.partition(":")[2] or "0"
        try:
            return RandomWeights(int(seed_text))
        except ValueError:
            raise BadArgumentsError(f"--weights {text!r}: the seed after 'random:' must be an integer") from None
    return Path(text).expanduser()


# --- What a diffusers folder must hold ------------------------------------------------------------
# Marigold-E2E-FT is a Stable Diffusion 2 diffusers folder. bufferany reads its UNet, VAE and
# scheduler config, and once (to cache the empty-prompt embedding beside them) its CLIP text encoder
# and tokenizer. Each part: the file diffusers writes, then the names it also reads in its place.

EMPTY_PROMPT_FILE = "bufferany_empty_prompt.safetensors"  # models.normal.text_embedding.CACHE_NAME


@dataclass(frozen=True)
class FolderPart:
    names: tuple[str, ...]  # paths inside the folder; the first is the one named and downloaded
    text: bool = False  # only needed until the empty-prompt embedding is cached (EMPTY_PROMPT_FILE)


DIFFUSERS_FOLDER_PARTS: tuple[FolderPart, ...] = (
    FolderPart(("unet/config.json",)),
    FolderPart(("unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.bin")),
    FolderPart(("vae/config.json",)),
    FolderPart(("vae/diffusion_pytorch_model.safetensors", "vae/diffusion_pytorch_model.bin")),
    FolderPart(("scheduler/scheduler_config.json",)),
    FolderPart(("text_encoder/config.json",), text=True),
    FolderPart(("text_encoder/model.safetensors", "text_encoder/pytorch_model.bin"), text=True),
    FolderPart(("tokenizer/tokenizer_config.json",), text=True),
    # the slow tokenizer's files (Stable Diffusion 2's folders), or a fast tokenizer's one file
    FolderPart(("tokenizer/vocab.json", "tokenizer/tokenizer.json"), text=True),
    FolderPart(("tokenizer/merges.txt", "tokenizer/tokenizer.json"), text=True),
)


def folder_missing(folder: Path | None, *, text: bool | None = None) -> list[str]:
    """The parts (first names) a diffusers folder lacks; all of them when `folder` is None. The text
    encoder's parts count only while the folder has no cached empty-prompt embedding (or when `text`
    is True: what `download` fetches to compute it)."""
    if text is None:
        text = folder is None or not (folder / EMPTY_PROMPT_FILE).is_file()
    return [
        part.names[0]
        for part in DIFFUSERS_FOLDER_PARTS
        if (text or not part.text) and (folder is None or not any((folder / n).is_file() for n in part.names))
    ]


def folder_files(folder: Path) -> list[Path]:
    """The files of a diffusers folder bufferany reads (present ones only), with the cached embedding."""
    found = [folder / n for part in DIFFUSERS_FOLDER_PARTS for n in part.names if (folder / n).is_file()]
    return found + ([folder / EMPTY_PROMPT_FILE] if (folder / EMPTY_PROMPT_FILE).is_file() else [])


def folder_patterns(missing: list[str] | None = None) -> list[str]:
    """`allow_patterns` for fetching a diffusers folder: each part's first name; with `missing` (parts
    a first pass did not find), the other names of those parts instead (a repository without
    safetensors files, or with a fast tokenizer's tokenizer.json)."""
    if missing is not None:
        names = [n for part in DIFFUSERS_FOLDER_PARTS if part.names[0] in missing for n in part.names[1:]]
        return list(dict.fromkeys(names))
    return [part.names[0] for part in DIFFUSERS_FOLDER_PARTS] + ["tokenizer/special_tokens_map.json"]


# --- Where weights are found ----------------------------------------------------------------------


@dataclass(frozen=True)
class Found:
    """Where a weight file (or folder) was found and through which rule."""

    path: Path
    source: str  # "explicit path", "--models-dir", "$BUFFERANY_MODELS" or "Hugging Face cache"


def models_folders(models_dir: Path | None = None) -> list[tuple[Path, str]]:
    """The models folders searched, in order, with their labels: `models_dir`, then $BUFFERANY_MODELS."""
    folders = [(Path(models_dir).expanduser(), "--models-dir")] if models_dir is not None else []
    if os.environ.get(MODELS_ENV):
        folders.append((Path(os.environ[MODELS_ENV]).expanduser(), f"${MODELS_ENV}"))
    return folders


def locate(spec: WeightSpec, *, path: Path | None = None, models_dir: Path | None = None) -> Found | None:
    """Where `spec` is found offline (first wins): an explicit path, the models folders, the Hugging
    Face cache; None when nowhere. A folder found may still be incomplete (`folder_missing`)."""
    if path is not None:
        return Found(Path(path), "explicit path") if Path(path).exists() else None
    for folder, label in models_folders(models_dir):
        candidate = folder / spec.local_name
        if candidate.exists():
            return Found(candidate, label)
    hub_path = _from_hub(spec, local_only=True)
    return None if hub_path is None else Found(hub_path, "Hugging Face cache")


def resolve(
    spec: WeightSpec,
    *,
    path: Path | None = None,
    models_dir: Path | None = None,
    allow_download: bool = False,
) -> Path:
    """Return the local path of a model's weights, or raise `MissingWeightsError` saying what is
    missing and the `bufferany-models download` command that fetches it."""
    if path is not None:
        if not path.exists():
            raise MissingWeightsError(f"weights file {path} does not exist (model {spec.name})")
        return path
    found = locate(spec, models_dir=models_dir)
    if found is not None:
        return found.path
    if allow_download:
        return download_spec(spec)
    raise missing_weights_error({spec.name: (spec.name,)}, models_dir=models_dir)


def _from_hub(spec: WeightSpec, *, local_only: bool) -> Path | None:
    try:
        from huggingface_hub import hf_hub_download, snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - huggingface_hub is a declared dependency
        return None
    try:
        if spec.kind == "file":
            return Path(hf_hub_download(spec.repo_id, spec.filename, local_files_only=local_only))
        # The parts `download_spec` fetches: a snapshot holding them is complete for bufferany.
        return Path(snapshot_download(spec.repo_id, allow_patterns=folder_patterns(), local_files_only=local_only))
    except (LocalEntryNotFoundError, OSError, ValueError):
        return None


# --- What a render needs that is missing ----------------------------------------------------------


@dataclass(frozen=True)
class MissingFile:
    model: str  # the catalogue (or flow) model that needs it
    spec: WeightSpec
    file: str  # the file's name, or `<folder>/<part>` inside a diffusers folder


def missing_files(models: dict[str, tuple[str, ...]], *, models_dir: Path | None = None) -> list[MissingFile]:
    """Every file the `models` (model name -> registry names of its weights) lack offline, each
    weight spec once (models sharing a prior's file name it once)."""
    missing: list[MissingFile] = []
    seen: set[str] = set()
    for model, spec_names in models.items():
        for spec_name in spec_names:
            if spec_name in seen:
                continue
            seen.add(spec_name)
            spec = get_spec(spec_name)
            found = locate(spec, models_dir=models_dir)
            if spec.kind == "file":
                if found is None:
                    missing.append(MissingFile(model, spec, spec.filename))
                continue
            folder = None if found is None or not found.path.is_dir() else found.path
            missing += [MissingFile(model, spec, f"{spec.local_name}/{part}") for part in folder_missing(folder)]
    return missing


def download_command(
    models: list[str], *, models_dir: Path | None = None, licences: tuple[str, ...] | list[str] = ()
) -> str:
    """The one `bufferany-models download` command that fetches `models` where a render looks:
    `models_dir`, else $BUFFERANY_MODELS, else the Hugging Face cache."""
    import shlex

    words = ["bufferany-models", "download", *models]
    folders = models_folders(models_dir)
    if folders:
        words += ["--to", str(folders[0][0])]
    for licence in dict.fromkeys(licences):
        words += ["--accept-licence", licence]
    return shlex.join(words)


def missing_weights_error(
    models: dict[str, tuple[str, ...]], *, models_dir: Path | None = None, missing: list[MissingFile] | None = None
) -> MissingWeightsError:
    """One error naming every missing file of `models` (model -> its weight specs) and the one
    command that fetches them all."""
    missing = missing_files(models, models_dir=models_dir) if missing is None else missing
    needing = list(dict.fromkeys(m.model for m in missing)) or list(models)
    lines = [f"weights not found offline for {', '.join(needing)}:"]
    for spec_name in dict.fromkeys(m.spec.name for m in missing):
        spec = get_spec(spec_name)
        source = f"from {spec.repo_id}, licence {spec.licence}"
        if spec.kind == "file":
            lines.append(f"  {spec.filename}  ({source})")
            continue
        parts = [m.file.split("/", 1)[1] for m in missing if m.spec.name == spec_name]
        lines.append(f"  {spec.local_name}/ (diffusers folder, {source}): {', '.join(parts)}")
    where = [f"{label} {folder}" for folder, label in models_folders(models_dir)] + [f"the Hugging Face cache {_hub_cache()}"]
    lines.append(f"looked in: {'; '.join(where)}")
    licences = [m.spec.licence for m in missing if m.spec.non_commercial]
    lines.append(f"fetch them with: {download_command(needing, models_dir=models_dir, licences=licences)}")
    if licences:
        lines.append(f"  ({', '.join(dict.fromkeys(licences))} is a non-commercial licence: read it before accepting)")
    lines.append("or pass an explicit weights path, or `--weights random` for an untrained test run")
    return MissingWeightsError("\n".join(lines))


def require_weights(models: dict[str, tuple[str, ...]], *, models_dir: Path | None = None) -> None:
    """Raise one MissingWeightsError listing every missing file of `models` (see `missing_weights_error`)."""
    missing = missing_files(models, models_dir=models_dir)
    if missing:
        raise missing_weights_error(models, models_dir=models_dir, missing=missing)


def _hub_cache() -> str:
    try:
        from huggingface_hub import constants
    except ImportError:  # pragma: no cover
        return "(huggingface_hub is not installed)"
    return str(constants.HF_HUB_CACHE)


# --- Downloading ----------------------------------------------------------------------------------


def download_spec(spec: WeightSpec, *, to: Path | None = None) -> Path:
    """Fetch `spec` through huggingface_hub: into the Hugging Face cache, or into the models folder
    `to` under its local name (`to/<file>`, `to/<repo name>/` for a diffusers folder). Only the parts
    bufferany reads are fetched. `HF_ENDPOINT` is read now, not at import. Failures (no network,
    gated repository, missing file) raise MissingWeightsError naming the repository and the reason."""
    from huggingface_hub import hf_hub_download, snapshot_download

    endpoint = os.environ.get("HF_ENDPOINT") or None
    try:
        if spec.kind == "file":
            local_dir = None if to is None else str(to)
            return Path(hf_hub_download(spec.repo_id, spec.filename, local_dir=local_dir, endpoint=endpoint))
        local_dir = None if to is None else str(Path(to) / spec.local_name)
        folder = Path(
            snapshot_download(spec.repo_id, allow_patterns=folder_patterns(), local_dir=local_dir, endpoint=endpoint)
        )
        missing = folder_missing(folder, text=True)
        if missing and folder_patterns(missing):  # the other names of the parts not found
            snapshot_download(spec.repo_id, allow_patterns=folder_patterns(missing), local_dir=local_dir, endpoint=endpoint)
        return folder
    except Exception as exc:  # huggingface_hub raises many types: HTTP, offline, gated, not found
        if isinstance(exc, BufferanyError):
            raise
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if "401" in reason or "403" in reason or "gated" in reason.lower():
            hint = f"; log in first (`hf auth login`) and accept the terms on {spec.page}"
        raise MissingWeightsError(
            f"could not download {spec.local_name} from {spec.repo_id} "
            f"({endpoint or 'https://huggingface.co'}): {type(exc).__name__}: {reason}{hint}"
        ) from exc


def sha256_of(path: Path, *, chunk: int = 1 << 20) -> str:
    """sha256 of a weight file (or of a folder's files in sorted order), recorded in output headers.

    Cached by (path, size, modification time) in this process and in a small file in the user's
    cache (`hash_cache_path()`), so loading the same GB-sized file again does not read it again."""
    path = Path(path)
    real = os.path.realpath(path)
    try:
        fingerprint = _fingerprint(Path(real))
    except OSError as exc:
        raise MissingWeightsError(f"cannot read weights {path}: {exc.strerror or exc}") from exc
    cached = _cached_hash(real, fingerprint)
    if cached is not None:
        return cached
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        with open(file, "rb") as handle:
            while block := handle.read(chunk):
                digest.update(block)
    value = digest.hexdigest()
    _remember_hash(real, fingerprint, value)
    return value


# --- Hash cache ------------------------------------------------------------------------------------
# A file's sha256 is reused while its size and modification time (nanoseconds) are unchanged; a
# folder's while the names, sizes and times of all its files are. Entries live in memory and in
# `hash_cache_path()` (JSON, written atomically; unwritable caches are skipped, never an error).

HASH_CACHE_ENV = "BUFFERANY_HASH_CACHE"
_HASHES: dict[tuple[str, str], str] = {}


def hash_cache_path() -> Path:
    """The sidecar file of known hashes: `$BUFFERANY_HASH_CACHE`, else
    `$XDG_CACHE_HOME/bufferany/weights_sha256.json` (`~/.cache/...` without XDG_CACHE_HOME)."""
    if os.environ.get(HASH_CACHE_ENV):
        return Path(os.environ[HASH_CACHE_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "bufferany" / "weights_sha256.json"


def _fingerprint(path: Path) -> str:
    if not path.is_dir():
        stat = os.stat(path)
        return f"{stat.st_size}:{stat.st_mtime_ns}"
    parts = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        stat = file.stat()
        parts.append(f"{file.relative_to(path).as_posix()}:{stat.st_size}:{stat.st_mtime_ns}")
    return "dir:" + hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _read_hash_cache() -> dict:
    try:
        data = json.loads(hash_cache_path().read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _cached_hash(real: str, fingerprint: str) -> str | None:
    if (real, fingerprint) in _HASHES:
        return _HASHES[real, fingerprint]
    record = _read_hash_cache().get(real)
    if isinstance(record, dict) and record.get("fingerprint") == fingerprint:
        value = record.get("sha256")
        if isinstance(value, str) and len(value) == 64:
            _HASHES[real, fingerprint] = value
            return value
    return None


def _remember_hash(real: str, fingerprint: str, value: str) -> None:
    _HASHES[real, fingerprint] = value
    records = {k: v for k, v in _read_hash_cache().items() if os.path.exists(k)}  # drop deleted files
    records[real] = {"fingerprint": fingerprint, "sha256": value}
    text = json.dumps(records, indent=1, sort_keys=True)
    try:
        atomic_write(hash_cache_path(), lambda tmp: tmp.write_text(text))
    except (OSError, BufferanyError):
        pass  # read-only home (farm nodes): the in-process cache still holds it


# --- Verifying and reading checkpoint files --------------------------------------------------------

_REDOWNLOAD = "delete it and download it again"


def spec_for_file(path: Path) -> WeightSpec | None:
    """The registered weight file `path` is (same file name), or None for the user's own files."""
    for spec in _REGISTRY.values():
        if spec.kind == "file" and spec.filename == Path(path).name:
            return spec
    return None


def verify_file(path: Path, spec: WeightSpec | None = None) -> None:
    """Check `path` against the pinned size and sha256 of `spec` (default: the registered file of
    the same name). The size is compared always (free); the hash when pinned (read once, then
    cached). Raises MissingWeightsError naming the file, what was expected and what was found."""
    path = Path(path)
    spec = spec if spec is not None else spec_for_file(path)
    if spec is None:
        return
    where = f"weights file {path} ({spec.filename} from {spec.repo_id}, model {spec.name})"
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise MissingWeightsError(f"cannot read {where}: {exc.strerror or exc}") from exc
    if spec.size_bytes is not None and size != spec.size_bytes:
        what = "truncated (an interrupted download?)" if size < spec.size_bytes else "not the official file"
        raise MissingWeightsError(
            f"{where} is {size:,} bytes, expected {spec.size_bytes:,}: {what}; {_REDOWNLOAD}"
        )
    if spec.sha256 is not None:
        actual = sha256_of(path)
        if actual != spec.sha256.lower():
            raise MissingWeightsError(
                f"{where} is corrupt or not the official file: sha256 {actual}, expected {spec.sha256}; "
                f"{_REDOWNLOAD}"
            )


def verify_folder(folder: Path, spec: WeightSpec) -> tuple[list[str], list[Path]]:
    """Check the files of a diffusers folder that `PINNED` lists (`(repo_id, "unet/...")`) against
    their size and sha256, raising MissingWeightsError on a mismatch. Returns the parts checked and
    the weight files with no pinned value (their hashes could not be confirmed offline)."""
    checked, unpinned = [], []
    for file in folder_files(Path(folder)):
        relative = file.relative_to(folder).as_posix()
        pinned = PINNED.get((spec.repo_id, relative))
        if pinned is None:
            if file.suffix in (".safetensors", ".bin") and relative != EMPTY_PROMPT_FILE:
                unpinned.append(file)
            continue
        size, sha = pinned
        actual = os.path.getsize(file)
        what = f"weights file {file} ({relative} from {spec.repo_id}, model {spec.name})"
        if actual != size:
            kind = "truncated (an interrupted download?)" if actual < size else "not the official file"
            raise MissingWeightsError(f"{what} is {actual:,} bytes, expected {size:,}: {kind}; {_REDOWNLOAD}")
        digest = sha256_of(file)
        if digest != sha:
            raise MissingWeightsError(
                f"{what} is corrupt or not the official file: sha256 {digest}, expected {sha}; {_REDOWNLOAD}"
            )
        checked.append(relative)
    return checked, unpinned


def load_checkpoint(path: Path, *, name: str | None = None) -> dict:
    """Read a `.pth` (weights_only, never arbitrary pickle) or `.safetensors` state dict on the CPU.

    A file registered under its official name is verified first (`verify_file`). Whatever the file,
    what is not a checkpoint (empty, a Git LFS pointer, an HTML page, a truncated archive or
    safetensors file) raises MissingWeightsError naming the file, never a loader's traceback."""
    path = Path(path)
    label = f"weights file {path}" + (f" (model {name})" if name else "")
    if not path.is_file():
        raise MissingWeightsError(f"{label} does not exist")
    verify_file(path)
    problem = checkpoint_problem(path)
    if problem is not None:
        raise MissingWeightsError(f"{label} {problem}")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        else:
            import torch

            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch and safetensors raise many types for corrupt or pickled-code files
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise MissingWeightsError(
            f"cannot load {label}: {reason[:300]} (a corrupt file, or one holding more than tensors: "
            f"{_REDOWNLOAD} if it should be an official file)"
        ) from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise BadArgumentsError(f"weights file {path} does not hold a state dict")
    return state


def checkpoint_problem(path: Path) -> str | None:
    """Why `path` cannot be a checkpoint, read from its first bytes and its structure (cheap: the
    safetensors header, or the zip directory at the end of a torch file), or None when it may be.

    Not a hash check: a complete file of the right format with wrong content passes (see `verify_file`)."""
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as handle:
            head = handle.read(512)
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    if size == 0:
        return f"is empty: {_REDOWNLOAD}"
    if head.startswith(b"version https://git-lfs.github.com/spec"):
        return (
            f"is a Git LFS pointer ({size} bytes of text), not the weights: the repository was cloned "
            f"without git-lfs; fetch the real file (`git lfs pull`, or `hf download`)"
        )
    text = head.lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html", b"<?xml", b"<head", b'{"error')):
        return (
            f"is a web page or an error message ({size} bytes), not the weights: the download "
            f"failed (login, licence or rate limit?); {_REDOWNLOAD}"
        )
    if path.suffix == ".safetensors":
        return _safetensors_problem(path, head, size)
    if head.startswith(b"PK\x03\x04"):  # torch's zip format (torch.save since PyTorch 1.6)
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                archive.infolist()
        except (zipfile.BadZipFile, OSError, ValueError):
            return f"is truncated or corrupt (its zip directory is missing or broken): {_REDOWNLOAD}"
    return None


def _safetensors_problem(path: Path, head: bytes, size: int) -> str | None:
    bad = f"is truncated or not a safetensors file: {_REDOWNLOAD}"
    if size < 8:
        return bad
    header_len = int.from_bytes(head[:8], "little")
    if header_len <= 0 or 8 + header_len > size:
        return bad
    try:
        with open(path, "rb") as handle:
            handle.seek(8)
            header = json.loads(handle.read(header_len))
        ends = [int(v["data_offsets"][1]) for k, v in header.items() if k != "__metadata__"]
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return bad
    needed = 8 + header_len + max(ends, default=0)
    if needed > size:
        return f"is truncated ({size:,} bytes, its header needs {needed:,}): {_REDOWNLOAD}"
    return None


def check_checkpoint_folder(folder: Path, subfolders: tuple[str, ...]) -> None:
    """`checkpoint_problem` for every weight file (.safetensors, .bin, .pth) in a diffusers folder's
    `subfolders`, raising MissingWeightsError naming the first bad file. Missing subfolders are left
    to the loader's own message."""
    for sub in subfolders:
        base = Path(folder) / sub
        if not base.is_dir():
            continue
        for file in sorted(base.iterdir()):
            if file.is_file() and file.suffix in (".safetensors", ".bin", ".pth"):
                problem = checkpoint_problem(file)
                if problem is not None:
                    raise MissingWeightsError(f"weights file {file} {problem}")


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
    """`load_checkpoint` without a model name (kept for existing callers)."""
    return load_checkpoint(path)
