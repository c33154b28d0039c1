"""`bufferany-models download / verify / list / path` against a Hugging Face hub served on loopback.

`FakeHub` is a real HTTP server speaking the part of the hub's protocol huggingface_hub's
`hf_hub_download` and `snapshot_download` use (`/api/models/<repo>/revision/<rev>`,
`/api/models/<repo>/tree/<rev>`, HEAD and GET `/<repo>/resolve/<rev>/<path>`, with the
`X-Repo-Commit`, `ETag` and `X-Error-Code` headers). It serves small stand-in files under the
official repositories, names and layouts; huggingface_hub reaches it through `HF_ENDPOINT`. Nothing
leaves the machine.

Stand-ins are tiny: the tests point the catalogue's entries at the `tiny` architectures (same
keys as the official files, smaller shapes: the official key lists are proven against
`../shared/reference` in test_depth_checkpoints.py) and pin the stand-ins' own sizes and sha256.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import torch
from diffusers import DDIMScheduler
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from bufferany_core.errors import ExitCode
from bufferany_core.flow import backends
from bufferany_core.models import catalog, weights
from bufferany_core.models.manager import inventory
from bufferany_core.models.manager.cli import main
from bufferany_core.models.normal.build import random_image_model
from bufferany_core.models.normal.configs import DEFAULT_SCHEDULER
from bufferany_core.models.weights import EMPTY_PROMPT_FILE, deterministic_state_dict

REPO = Path(__file__).resolve().parents[1]
VDA = ("depth-anything/Video-Depth-Anything-Small", "video_depth_anything_vits.pth")
LARGE = ("depth-anything/Depth-Anything-V2-Large", "depth_anything_v2_vitl.pth")
RAFT = ("hr16/RAFT-v2", "raft_small_C_T_V2-01064c6d.pth")
MARIGOLD = "GonzaloMG/marigold-e2e-ft-normals"
# in the repository but not read by bufferany: never fetched
EXTRAS = ("README.md", "model_index.json", "unet/diffusion_pytorch_model.fp16.safetensors", "text_encoder/model.fp16.safetensors")


# -- the fake hub ----------------------------------------------------------------------------------


class FakeHub:
    """Repositories of files served over HTTP on 127.0.0.1, as the Hugging Face hub serves them."""

    def __init__(self) -> None:
        self.repos: dict[str, dict[str, bytes]] = {}
        self.requests: list[tuple[str, str]] = []  # (method, path)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hub._answer(self, body=True)

            def do_HEAD(self):
                hub._answer(self, body=False)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def add(self, repo_id: str, path: str, data: bytes) -> None:
        self.repos.setdefault(repo_id, {})[path] = data

    def add_folder(self, repo_id: str, root: Path) -> None:
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            self.add(repo_id, file.relative_to(root).as_posix(), file.read_bytes())

    def commit(self, repo_id: str) -> str:
        digest = hashlib.sha1()
        for path, data in sorted(self.repos[repo_id].items()):
            digest.update(path.encode() + hashlib.sha256(data).digest())
        return digest.hexdigest()

    def fetched(self) -> list[str]:
        """Paths of the files downloaded (GET .../resolve/...)."""
        return [p.split("/resolve/", 1)[1].split("/", 1)[1] for m, p in self.requests if m == "GET" and "/resolve/" in p]

    def _answer(self, handler: BaseHTTPRequestHandler, *, body: bool) -> None:
        path = unquote(urlsplit(handler.path).path)
        self.requests.append((handler.command, path))
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] in ("revision", "tree"):
            repo_id = "/".join(parts[2:4])
            if repo_id not in self.repos:
                return self._error(handler, 404, "RepoNotFound")
            if parts[4] == "revision":
                files = self.repos[repo_id]
                info = {"id": repo_id, "sha": self.commit(repo_id), "siblings": [{"rfilename": p} for p in files]}
                return self._send(handler, 200, json.dumps(info).encode(), {"Content-Type": "application/json"}, body)
            prefix = "/".join(parts[6:])
            listing = [self._tree_entry(p, d) for p, d in sorted(self.repos[repo_id].items()) if p.startswith(prefix)]
            return self._send(handler, 200, json.dumps(listing).encode(), {"Content-Type": "application/json"}, body)
        if len(parts) >= 5 and parts[2] == "resolve":
            repo_id, file = "/".join(parts[:2]), "/".join(parts[4:])
            if repo_id not in self.repos:
                return self._error(handler, 404, "RepoNotFound")
            commit = self.commit(repo_id)
            if file not in self.repos[repo_id]:
                return self._error(handler, 404, "EntryNotFound", {"X-Repo-Commit": commit})
            data = self.repos[repo_id][file]
            headers = {
                "X-Repo-Commit": commit,
                "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                "Content-Type": "application/octet-stream",
            }
            return self._send(handler, 200, data, headers, body)
        return self._error(handler, 404, "EntryNotFound")

    @staticmethod
    def _tree_entry(path: str, data: bytes) -> dict:
        blob = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        entry = {"type": "file", "path": path, "size": len(data), "oid": blob}
        if path.endswith((".pth", ".safetensors", ".bin")):
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    @staticmethod
    def _error(handler, status: int, code: str, headers: dict | None = None) -> None:
        message = json.dumps({"error": code}).encode()
        FakeHub._send(handler, status, message, {"X-Error-Code": code, **(headers or {})}, True)

    @staticmethod
    def _send(handler, status: int, data: bytes, headers: dict, body: bool) -> None:
        handler.send_response(status)
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if body and handler.command != "HEAD":
            handler.wfile.write(data)


# -- stand-in files --------------------------------------------------------------------------------


def depth_file(name: str, path: Path) -> bytes:
    """A checkpoint of the tiny architecture of depth model `name`, saved under the official name."""
    from bufferany_core.models.depth import build_depth_model

    module = build_depth_model(name.replace("-small", "-tiny").replace("-large", "-tiny"))
    torch.save(deterministic_state_dict(module), path)
    return path.read_bytes()


def raft_file(path: Path) -> bytes:
    module = backends.build_raft("raft-small")
    torch.save(deterministic_state_dict(module), path)
    return path.read_bytes()


def marigold_folder(root: Path) -> None:
    """A tiny Marigold-E2E-FT diffusers folder (UNet, VAE, scheduler, CLIP text encoder, tokenizer)
    with the official layout, plus files bufferany does not read."""
    prior = random_image_model("tiny", seed=0)
    prior.unet.save_pretrained(root / "unet")
    prior.vae.save_pretrained(root / "vae")
    DDIMScheduler(**DEFAULT_SCHEDULER, timestep_spacing="trailing").save_pretrained(root / "scheduler")
    vocab, merges = root / "vocab.json", root / "merges.txt"
    vocab.write_text(json.dumps({"<|startoftext|>": 0, "<|endoftext|>": 1, "!": 2, "a</w>": 3}))
    merges.write_text("#version: 0.2\n")
    CLIPTokenizer(
        vocab_file=str(vocab), merges_file=str(merges), model_max_length=77,
        bos_token="<|startoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>", pad_token="!",
    ).save_pretrained(root / "tokenizer")  # fmt: skip
    # Stable Diffusion 2's folders hold the slow tokenizer's files (newer transformers write tokenizer.json)
    vocab.rename(root / "tokenizer" / "vocab.json")
    merges.rename(root / "tokenizer" / "merges.txt")
    torch.manual_seed(0)
    CLIPTextModel(
        CLIPTextConfig(
            vocab_size=4, hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=2,
        )
    ).save_pretrained(root / "text_encoder")  # fmt: skip
    for extra in EXTRAS:
        (root / extra).parent.mkdir(parents=True, exist_ok=True)
        (root / extra).write_bytes(b"not read by bufferany\n")


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> dict:
    """The stand-in files, built once: {(repo, path): bytes} and the Marigold folder."""
    root = tmp_path_factory.mktemp("standins")
    marigold = root / "marigold"
    marigold_folder(marigold)
    return {
        VDA: depth_file("video-depth-anything-small", root / VDA[1]),
        LARGE: depth_file("depth-anything-v2-large", root / LARGE[1]),
        RAFT: raft_file(root / RAFT[1]),
        "marigold": marigold,
    }


@pytest.fixture
def hub(standins, tmp_path, monkeypatch):
    """The fake hub serving the stand-ins, huggingface_hub pointed at it and at an empty cache, the
    catalogue's models on their tiny architectures, and the stand-ins pinned as the official files."""
    server = FakeHub()
    for key in (VDA, LARGE, RAFT):
        server.add(*key, standins[key])
    server.add_folder(MARIGOLD, standins["marigold"])
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv(weights.MODELS_ENV, raising=False)
    monkeypatch.setenv(weights.HASH_CACHE_ENV, str(tmp_path / "hashes.json"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "user-cache"))
    monkeypatch.setattr(weights, "_HASHES", {})
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    for entries in catalog.CATALOGUES.values():
        for name, entry in entries.items():
            if entry.weights is not None and entry.size in ("vits", "vitl", "sd2"):
                monkeypatch.setitem(entries, name, dataclasses.replace(entry, size="tiny"))
    monkeypatch.setattr(weights, "_REGISTRY", dict(weights._REGISTRY))
    for name, spec in weights._REGISTRY.items():
        data = standins.get((spec.repo_id, spec.filename))
        if data is not None:
            pinned = dataclasses.replace(spec, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
            weights._REGISTRY[name] = pinned
            if name in backends.RAFT_WEIGHTS:
                monkeypatch.setitem(backends.RAFT_WEIGHTS, name, pinned)
    yield server
    server.close()


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# -- download ---------------------------------------------------------------------------------------


def test_download_to_a_models_folder_fetches_only_what_each_model_needs(hub, tmp_path, capsys):
    models = tmp_path / "shared-models"
    code, out, err = run(
        capsys, "download", "video-depth-anything-small", "buffer-anytime-normal", "raft-small", "--to", str(models)
    )
    assert code == ExitCode.OK, err
    assert (models / VDA[1]).is_file() and (models / RAFT[1]).is_file()
    folder = models / "marigold-e2e-ft-normals"
    for part in weights.DIFFUSERS_FOLDER_PARTS:
        assert (folder / part.names[0]).is_file(), part  # the official names, found first
    assert not (folder / "tokenizer" / "tokenizer.json").exists()  # an alternative, not needed here
    assert not any(extra in hub.fetched() for extra in EXTRAS)  # only what bufferany reads
    assert not (folder / "README.md").exists()
    assert (folder / EMPTY_PROMPT_FILE).is_file()  # renders need no text encoder
    assert "size and sha256 match the pinned official values" in out
    assert f"BUFFERANY_MODELS={models}" in out

    # the render's discovery finds them: the models folder, or $BUFFERANY_MODELS on a farm worker
    needs = {"video-depth-anything-small": ("video-depth-anything-small",), "buffer-anytime-normal": ("marigold-e2e-ft-normals",)}
    weights.require_weights(needs, models_dir=models)
    os.environ[weights.MODELS_ENV] = str(models)
    try:
        found = weights.locate(weights.get_spec("marigold-e2e-ft-normals"))
        assert found is not None and found.path == folder and found.source == "$BUFFERANY_MODELS"
    finally:
        del os.environ[weights.MODELS_ENV]

    # list, path and verify see the same files
    code, out, _ = run(capsys, "list", "--models-dir", str(models), "--json")
    listed = {m["name"]: m for m in json.loads(out)}
    assert listed["video-depth-anything-small"]["files"][0]["path"] == str(models / VDA[1])
    assert listed["buffer-anytime-normal"]["files"][0]["complete"]
    assert listed["depth-anything-v2-large"]["files"][0]["path"] is None
    code, out, _ = run(capsys, "path", "buffer-anytime-normal", "--models-dir", str(models))
    assert code == ExitCode.OK and out.strip() == str(folder)
    code, out, err = run(capsys, "verify", "video-depth-anything-small", "buffer-anytime-normal", "raft-small",
                         "--models-dir", str(models))  # fmt: skip
    assert code == ExitCode.OK, out + err
    assert out.count("ok      ") == 3
    assert "state dict loads strictly into video-depth-anything-small" in out
    assert "unet: state dict loads strictly" in out and "vae: state dict loads strictly" in out
    assert "not pinned" in out  # the Marigold folder: sha256 printed, how to confirm it said


def test_defaults_download_and_the_models_load_without_a_text_encoder(hub, tmp_path, capsys, monkeypatch):
    from bufferany_core.models.depth import load_depth_predictor
    from bufferany_core.models.normal import load_normal_predictor

    monkeypatch.setattr(inventory, "DEFAULT_FLOW", "raft-small")  # a 4 MB stand-in instead of 21 MB
    models = tmp_path / "models"
    code, out, err = run(capsys, "download", "--defaults", "--to", str(models))
    assert code == ExitCode.OK, err
    assert "Done: video-depth-anything-small buffer-anytime-normal raft-small" in out
    shutil.rmtree(models / "marigold-e2e-ft-normals" / "text_encoder")  # as a farm's folder may be
    depth = load_depth_predictor("video-depth-anything-small", models_dir=models)
    assert depth.info.weights_sha256 == hashlib.sha256((models / VDA[1]).read_bytes()).hexdigest()
    normal = load_normal_predictor("buffer-anytime-normal", models_dir=models, processing_size=32)
    assert normal.info.weights_sha256 is not None
    frames = torch.rand(2, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    assert normal.predict(frames).shape == frames.shape


def test_download_into_the_hugging_face_cache_is_found_there(hub, tmp_path, capsys):
    code, out, err = run(capsys, "download", "video-depth-anything-small", "marigold-e2e-ft-normals")
    assert code == ExitCode.OK, err
    for name in ("video-depth-anything-small", "marigold-e2e-ft-normals"):
        found = weights.locate(weights.get_spec(name))
        assert found is not None and found.source == "Hugging Face cache"
        assert str(found.path).startswith(str(tmp_path / "hf-cache"))
    folder = weights.locate(weights.get_spec("marigold-e2e-ft-normals")).path
    assert weights.folder_missing(folder) == [] and (folder / EMPTY_PROMPT_FILE).is_file()
    code, out, _ = run(capsys, "path", "video-depth-anything-small")
    assert code == ExitCode.OK and Path(out.strip()).read_bytes() == hub.repos[VDA[0]][VDA[1]]
    # a second download finds everything in place and fetches no file again
    before = len(hub.fetched())
    assert run(capsys, "download", "video-depth-anything-small", "marigold-e2e-ft-normals")[0] == ExitCode.OK
    assert len(hub.fetched()) == before


def test_verify_names_a_corrupted_and_a_truncated_file(hub, tmp_path, capsys):
    models = tmp_path / "models"
    assert run(capsys, "download", "video-depth-anything-small", "raft-small", "marigold-e2e-ft-normals",
               "--to", str(models))[0] == ExitCode.OK  # fmt: skip
    vda = models / VDA[1]
    data = bytearray(vda.read_bytes())
    data[len(data) // 2] ^= 0xFF
    vda.write_bytes(bytes(data))  # same size, other bytes
    raft = models / RAFT[1]
    raft.write_bytes(raft.read_bytes()[:1000])
    unet = models / "marigold-e2e-ft-normals" / "unet" / "diffusion_pytorch_model.safetensors"
    unet.write_bytes(unet.read_bytes()[:-100])
    code, out, err = run(capsys, "verify", "--models-dir", str(models))
    assert code == ExitCode.MISSING_WEIGHTS
    assert f"FAILED  {VDA[1]}" in out and "corrupt or not the official file: sha256" in out
    assert f"FAILED  {RAFT[1]}" in out and "truncated" in out
    assert "FAILED  marigold-e2e-ft-normals/" in out and str(unet) in out
    assert "missing depth_anything_v2_vitl.pth" in out  # not found: listed, not checked
    assert "3 weight file(s) failed verification" in err


def test_a_file_that_does_not_fit_the_architecture_fails_the_strict_load(hub, tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    path = models / VDA[1]
    torch.save({"head.nonsense": torch.zeros(3)}, path)
    data = path.read_bytes()
    spec = weights._REGISTRY["video-depth-anything-small"]
    weights._REGISTRY["video-depth-anything-small"] = dataclasses.replace(
        spec, size_bytes=len(data), sha256=hashlib.sha256(data).hexdigest()
    )
    code, out, _ = run(capsys, "verify", "video-depth-anything-small", "--models-dir", str(models))
    assert code == ExitCode.MISSING_WEIGHTS
    assert "does not fit video-depth-anything-small" in out and "1 unexpected keys ['head.nonsense']" in out


def test_non_commercial_weights_need_the_licence_accepted(hub, tmp_path, capsys):
    models = tmp_path / "models"
    code, _, err = run(capsys, "download", "buffer-anytime-depth-large", "--to", str(models))
    assert code == ExitCode.BAD_ARGUMENTS
    assert "CC-BY-NC-4.0" in err and "non-commercial" in err and "--accept-licence CC-BY-NC-4.0" in err
    assert hub.requests == []  # nothing asked of the hub
    code, out, err = run(capsys, "download", "buffer-anytime-depth-large", "--to", str(models),
                         "--accept-licence", "cc-by-nc-4.0")  # fmt: skip
    assert code == ExitCode.OK, err
    assert (models / LARGE[1]).is_file()


def test_a_file_the_hub_serves_wrong_is_refused(hub, tmp_path, capsys):
    hub.add(*VDA, hub.repos[VDA[0]][VDA[1]][:-10])  # an interrupted upload, say
    code, out, err = run(capsys, "download", "video-depth-anything-small", "raft-small", "--to", str(tmp_path / "m"))
    assert code == ExitCode.MISSING_WEIGHTS
    assert "truncated" in out and "1 of 2 download(s) failed" in err
    assert (tmp_path / "m" / RAFT[1]).is_file()  # the other file still came


def test_an_unreachable_hub_or_missing_repository_is_a_missing_weights_error(hub, tmp_path, capsys, monkeypatch):
    del hub.repos[VDA[0]]
    code, out, err = run(capsys, "download", "video-depth-anything-small", "--to", str(tmp_path / "m"))
    assert code == ExitCode.MISSING_WEIGHTS
    assert "could not download video_depth_anything_vits.pth from depth-anything/Video-Depth-Anything-Small" in out
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    code, out, err = run(capsys, "download", "raft-small", "--to", str(tmp_path / "m"))
    assert code == ExitCode.MISSING_WEIGHTS and "could not download" in out


def test_the_installed_command_honours_hf_endpoint(hub, tmp_path):
    """The console script in a fresh process: HF_ENDPOINT from its environment. The Marigold folder
    has no pinned hashes, so it downloads as served; verify then loads it strictly into the real SD2
    architecture, which the tiny stand-in does not fit."""
    command = Path(sys.executable).with_name("bufferany-models")
    if not command.exists():
        pytest.skip("bufferany-models is not installed in this environment (pip install -e .)")
    env = dict(os.environ, HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_PROGRESS_BARS="1")
    models = tmp_path / "models"

    def call(*argv):
        return subprocess.run([str(command), *argv], capture_output=True, text=True, env=env, timeout=300)

    done = call("download", "marigold-e2e-ft-normals", "--to", str(models))
    assert done.returncode == ExitCode.OK, done.stderr
    assert hub.fetched() and (models / "marigold-e2e-ft-normals" / EMPTY_PROMPT_FILE).is_file()
    located = call("path", "marigold-e2e-ft-normals", "--models-dir", str(models))
    assert located.returncode == ExitCode.OK and located.stdout.strip() == str(models / "marigold-e2e-ft-normals")
    checked = call("verify", "marigold-e2e-ft-normals", "--models-dir", str(models))
    assert checked.returncode == ExitCode.MISSING_WEIGHTS
    assert "does not fit the sd2 UNet2DConditionModel" in checked.stdout


def test_pinned_folder_files_are_checked_on_download_and_verify(hub, tmp_path, capsys, monkeypatch):
    unet = "unet/diffusion_pytorch_model.safetensors"
    data = hub.repos[MARIGOLD][unet]
    monkeypatch.setitem(weights.PINNED, (MARIGOLD, unet), (len(data), hashlib.sha256(data).hexdigest()))
    models = tmp_path / "models"
    code, out, err = run(capsys, "download", "marigold-e2e-ft-normals", "--to", str(models))
    assert code == ExitCode.OK, err
    assert f"{unet}: size and sha256 match the pinned official values" in out
    code, out, _ = run(capsys, "verify", "marigold-e2e-ft-normals", "--models-dir", str(models))
    assert code == ExitCode.OK and f"{unet}: size and sha256 match the pinned official values" in out
    assert "vae/diffusion_pytorch_model.safetensors" in out and "not pinned" in out  # still unconfirmed

    monkeypatch.setitem(weights.PINNED, (MARIGOLD, unet), (len(data), "0" * 64))
    code, out, err = run(capsys, "download", "marigold-e2e-ft-normals", "--to", str(tmp_path / "other"))
    assert code == ExitCode.MISSING_WEIGHTS and "corrupt or not the official file" in out
