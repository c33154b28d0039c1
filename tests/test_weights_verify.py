"""Weight files are verified before they load: pinned size and sha256 of the official files (the hash
read once, then cached), and files that are not checkpoints at all (truncated, Git LFS pointers, web
pages) refused with an error naming the file, never a loader's traceback."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os

import pytest
import torch
from safetensors.torch import save_file

from bufferany_core.errors import ExitCode, MissingWeightsError
from bufferany_core.models import weights
from bufferany_core.models.weights import (
    PINNED,
    WeightSpec,
    check_checkpoint_folder,
    hash_cache_path,
    load_checkpoint,
    register,
    sha256_of,
    verify_file,
)

STATE = {"layer.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4), "layer.bias": torch.ones(3)}


@pytest.fixture(autouse=True)
def private_hash_cache(tmp_path, monkeypatch):
    """Each test gets its own sidecar cache and an empty in-process cache."""
    monkeypatch.setenv(weights.HASH_CACHE_ENV, str(tmp_path / "cache" / "hashes.json"))
    monkeypatch.setattr(weights, "_HASHES", {})


@pytest.fixture
def official(tmp_path, monkeypatch):
    """A small checkpoint registered (for this test only) with its true size and sha256."""
    path = tmp_path / "bufferany_test_official.pth"
    torch.save(STATE, path)
    data = path.read_bytes()
    spec = WeightSpec(
        name="test-official",
        repo_id="example/test-official",
        filename=path.name,
        licence="none",
        size_bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    monkeypatch.setattr(weights, "_REGISTRY", dict(weights._REGISTRY))
    register(spec)
    return path, spec


def test_a_correct_pinned_file_loads(official):
    path, spec = official
    state = load_checkpoint(path, name="test-official")
    assert set(state) == set(STATE) and torch.equal(state["layer.weight"], STATE["layer.weight"])
    assert sha256_of(path) == spec.sha256


def test_a_truncated_file_names_the_file_and_both_sizes(official):
    path, spec = official
    path.write_bytes(path.read_bytes()[: spec.size_bytes // 2])
    with pytest.raises(MissingWeightsError) as info:
        load_checkpoint(path, name="test-official")
    message = str(info.value)
    assert str(path) in message and "truncated" in message and "download it again" in message
    assert f"{spec.size_bytes // 2:,}" in message and f"{spec.size_bytes:,}" in message
    assert info.value.exit_code == ExitCode.MISSING_WEIGHTS


def test_a_wrong_hash_names_the_file_and_both_hashes(official):
    path, spec = official
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one flipped byte
    path.write_bytes(bytes(data))
    with pytest.raises(MissingWeightsError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert str(path) in message and spec.sha256 in message
    assert hashlib.sha256(bytes(data)).hexdigest() in message and "download it again" in message


def test_the_pinned_hash_is_read_once_then_taken_from_the_cache_record(official):
    path, spec = official
    verify_file(path)
    real = os.path.realpath(path)
    record = json.loads(hash_cache_path().read_text())[real]
    stat = os.stat(path)
    assert record == {"fingerprint": f"{stat.st_size}:{stat.st_mtime_ns}", "sha256": spec.sha256}

    # A fresh process (empty in-process cache) trusts the record while size and time are unchanged:
    # planting another hash in it makes the check fail, which it could not if the file were re-read.
    weights._HASHES.clear()
    planted = {real: {**record, "sha256": "0" * 64}}
    hash_cache_path().write_text(json.dumps(planted))
    with pytest.raises(MissingWeightsError, match="sha256 0{64}"):
        verify_file(path)

    # A changed modification time invalidates the record: the file is hashed again and passes.
    weights._HASHES.clear()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    verify_file(path)
    assert json.loads(hash_cache_path().read_text())[real]["sha256"] == spec.sha256


def test_an_unwritable_cache_is_not_an_error(official, tmp_path, monkeypatch):
    path, spec = official
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    monkeypatch.setenv(weights.HASH_CACHE_ENV, str(blocker / "hashes.json"))
    assert load_checkpoint(path) and sha256_of(path) == spec.sha256


def test_a_git_lfs_pointer_is_named_as_such(official, tmp_path):
    path, spec = official
    pointer = (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{spec.sha256}\nsize {spec.size_bytes}\n"
    )
    path.write_text(pointer)
    with pytest.raises(MissingWeightsError, match=r"bytes, expected"):  # the pinned size catches it first
        load_checkpoint(path)
    unpinned = tmp_path / "my_weights.pth"
    unpinned.write_text(pointer)
    with pytest.raises(MissingWeightsError) as info:
        load_checkpoint(unpinned, name="depth-anything-v2-tiny")
    message = str(info.value)
    assert str(unpinned) in message and "Git LFS pointer" in message and "depth-anything-v2-tiny" in message


@pytest.mark.parametrize(
    "content, words",
    [
        (b"", "is empty"),
        (b"<!DOCTYPE html><html><body>Access to model is restricted</body></html>", "web page"),
        (b"\n  <html><head><title>404</title></head></html>", "web page"),
        (b'{"error":"Repository Not Found"}', "web page or an error message"),
        (bytes(range(256)) * 8, "cannot load"),  # garbage bytes
    ],
)
def test_files_that_are_not_checkpoints_are_named(tmp_path, content, words):
    for suffix in (".pth", ".safetensors"):
        path = tmp_path / f"weights{suffix}"
        path.write_bytes(content)
        with pytest.raises(MissingWeightsError) as info:
            load_checkpoint(path)
        message = str(info.value)
        assert str(path) in message
        assert words in message or (suffix == ".safetensors" and "not a safetensors file" in message)


def test_truncated_unpinned_checkpoints_are_refused_before_loading(tmp_path):
    pth = tmp_path / "mine.pth"
    torch.save(STATE, pth)
    pth.write_bytes(pth.read_bytes()[:-200])  # the zip directory at the end is gone
    with pytest.raises(MissingWeightsError, match=r"mine\.pth is truncated or corrupt"):
        load_checkpoint(pth)

    st = tmp_path / "mine.safetensors"
    save_file(STATE, str(st))
    full = st.stat().st_size
    st.write_bytes(st.read_bytes()[:-10])
    with pytest.raises(MissingWeightsError, match=rf"mine\.safetensors is truncated \({full - 10:,} bytes"):
        load_checkpoint(st)


def test_unpinned_files_still_load(tmp_path):
    for suffix in (".pth", ".safetensors"):
        path = tmp_path / f"own{suffix}"
        torch.save(STATE, path) if suffix == ".pth" else save_file(STATE, str(path))
        assert torch.equal(load_checkpoint(path)["layer.bias"], STATE["layer.bias"])
    with pytest.raises(MissingWeightsError, match="does not exist"):
        load_checkpoint(tmp_path / "absent.pth")


def test_diffusers_folders_name_a_bad_weight_file(tmp_path):
    folder = tmp_path / "marigold"
    (folder / "unet").mkdir(parents=True)
    (folder / "vae").mkdir()
    save_file(STATE, str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    (folder / "unet" / "config.json").write_text("{}")
    check_checkpoint_folder(folder, ("unet", "vae", "absent"))  # complete files pass
    bad = folder / "vae" / "diffusion_pytorch_model.safetensors"
    bad.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 334643268\n")
    with pytest.raises(MissingWeightsError, match=r"vae/diffusion_pytorch_model\.safetensors is a Git LFS"):
        check_checkpoint_folder(folder, ("unet", "vae"))


def test_folder_hashes_are_cached_until_a_file_changes(tmp_path):
    folder = tmp_path / "unet"
    folder.mkdir()
    (folder / "a.bin").write_bytes(b"a" * 100)
    (folder / "b.bin").write_bytes(b"b" * 100)
    expected = hashlib.sha256(b"a" * 100 + b"b" * 100).hexdigest()
    assert sha256_of(folder) == expected
    assert json.loads(hash_cache_path().read_text())[os.path.realpath(folder)]["sha256"] == expected
    (folder / "b.bin").write_bytes(b"c" * 101)
    assert sha256_of(folder) == hashlib.sha256(b"a" * 100 + b"c" * 101).hexdigest()


def test_official_files_are_pinned_with_their_sources():
    import bufferany_core.flow.backends  # noqa: F401  (registers RAFT)
    from bufferany_core.models.weights import registered

    for spec in registered().values():
        pinned = PINNED.get((spec.repo_id, spec.filename))
        if pinned is not None:
            assert (spec.size_bytes, spec.sha256) == pinned
    for size, sha in PINNED.values():
        assert size > 1_000_000 and len(sha) == 64 and int(sha, 16) >= 0
    # torchvision names its files with the first 8 hex digits of their sha256 (torch.hub's check)
    for (repo, filename), (_, sha) in PINNED.items():
        if repo == "hr16/RAFT-v2":
            assert filename.rsplit("-", 1)[1].removesuffix(".pth") == sha[:8]


def test_a_registration_that_contradicts_the_pinned_values_is_refused(monkeypatch):
    monkeypatch.setattr(weights, "_REGISTRY", dict(weights._REGISTRY))
    (repo, filename), (size, sha) = next(iter(PINNED.items()))
    spec = WeightSpec("contradiction", repo, filename, "x", size_bytes=size + 1)
    with pytest.raises(ValueError, match="pinned"):
        register(spec)
    assert register(dataclasses.replace(spec, size_bytes=None)).sha256 == sha
