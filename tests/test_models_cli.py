"""`bufferany-models` without any hub: `list` of both catalogues and the flow models, `path` and
`verify` of what is missing, argument errors with their exit codes, and the render's one
"weights not found" error naming every missing file of every pass with the command that fetches them.
(Downloads against a local fake hub: test_models_cli_download.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pipeline_plates import write_plate

from bufferany_core.errors import ExitCode, MissingWeightsError
from bufferany_core.jobs import RenderJob
from bufferany_core.models import catalog, weights
from bufferany_core.models.manager import all_models
from bufferany_core.models.manager.cli import main
from bufferany_core.pipeline.render import run_render


@pytest.fixture(autouse=True)
def nothing_anywhere(tmp_path, monkeypatch):
    """No models folder and an empty Hugging Face cache; no network."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.delenv(weights.MODELS_ENV, raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # were anything fetched, it would fail


def run(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_names_every_model_of_both_catalogues_and_the_flow_models(capsys, tmp_path):
    code, out, _ = run(capsys, "list")
    assert code == ExitCode.OK
    names = [*catalog.DEPTH_MODELS, *catalog.NORMAL_MODELS, "raft-large", "raft-small"]
    for name in names:
        assert name in out
    assert "video-depth-anything-small *" in out and "buffer-anytime-normal *" in out and "raft-large *" in out
    assert "licence: CC-BY-NC-4.0" in out and "random weights only" in out
    assert "video_depth_anything_vits.pth (116,440,756 bytes" in out and ": missing" in out
    assert str(tmp_path / "hf-cache") in out

    code, out, _ = run(capsys, "list", "--json")
    listed = {m["name"]: m for m in json.loads(out)}
    assert set(listed) == set(names)
    assert {n for n, m in listed.items() if m["default"]} == {"video-depth-anything-small", "buffer-anytime-normal", "raft-large"}
    assert listed["depth-anything-v2-base"]["non_commercial"] and not listed["depth-anything-v2-small"]["non_commercial"]
    normal = listed["marigold-e2e-ft-normals"]["files"][0]
    assert normal["kind"] == "folder" and normal["path"] is None and "unet/config.json" in normal["missing_parts"]
    assert listed["raft-large"]["files"][0]["sha256"].startswith("ff5fadd5")


def test_list_says_where_each_file_is_found(capsys, tmp_path, monkeypatch):
    explicit, shared = tmp_path / "explicit", tmp_path / "shared"
    explicit.mkdir()
    shared.mkdir()
    (explicit / "video_depth_anything_vits.pth").write_bytes(b"x")
    (shared / "raft_small_C_T_V2-01064c6d.pth").write_bytes(b"x")
    (shared / "marigold-e2e-ft-normals" / "unet").mkdir(parents=True)
    monkeypatch.setenv(weights.MODELS_ENV, str(shared))
    code, out, _ = run(capsys, "list", "--models-dir", str(explicit))
    assert code == ExitCode.OK
    assert f"--models-dir: {explicit / 'video_depth_anything_vits.pth'}" in out
    assert f"$BUFFERANY_MODELS: {shared / 'raft_small_C_T_V2-01064c6d.pth'}" in out
    assert "incomplete, no unet/config.json" in out


def test_path_prints_the_files_or_says_what_to_download(capsys, tmp_path):
    (tmp_path / "depth_anything_v2_vits.pth").write_bytes(b"x")
    code, out, _ = run(capsys, "path", "buffer-anytime-depth-small", "--models-dir", str(tmp_path))
    assert code == ExitCode.OK and out == f"{tmp_path / 'depth_anything_v2_vits.pth'}\n"
    code, out, err = run(capsys, "path", "depth-anything-v2-large", "--models-dir", str(tmp_path))
    assert code == ExitCode.MISSING_WEIGHTS and out == ""
    assert f"bufferany-models download depth-anything-v2-large --to {tmp_path} --accept-licence CC-BY-NC-4.0" in err
    assert run(capsys, "path", "video-depth-anything-tiny")[0] == ExitCode.BAD_ARGUMENTS


def test_verify_without_files_checks_nothing_and_says_so(capsys):
    code, out, _ = run(capsys, "verify")
    assert code == ExitCode.OK
    assert "missing video_depth_anything_vits.pth" in out and "Verified 0 file(s)" in out
    code, _, err = run(capsys, "verify", "video-depth-anything-small")  # named: missing is an error
    assert code == ExitCode.MISSING_WEIGHTS and "bufferany-models download video-depth-anything-small" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["download"], "--defaults"),
        (["download", "no-such-model"], "known: depth-anything-v2-small"),
        (["download", "buffer-anytime-normal-tiny"], "random weights only"),
        (["path", "nope"], "unknown model"),
    ],
)
def test_bad_arguments_exit_2(capsys, argv, words):
    code, _, err = run(capsys, *argv)
    assert code == ExitCode.BAD_ARGUMENTS and words in err


def test_download_to_an_unwritable_folder_exits_9(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = run(capsys, "download", "raft-small", "--to", str(blocker / "models"))
    assert code == ExitCode.OUTPUT_NOT_WRITABLE and str(blocker) in err


def test_models_and_their_weights():
    models = {m.name: m for m in all_models()}
    assert [s.name for s in models["buffer-anytime-depth-large"].specs] == ["depth-anything-v2-large"]
    assert models["buffer-anytime-depth-large"].specs[0].non_commercial
    assert not models["buffer-anytime-normal"].specs[0].non_commercial
    assert models["raft-small"].family == "flow" and not models["raft-small"].default


def test_the_embedding_file_name_is_the_normal_models_cache_name():
    from bufferany_core.models.normal.text_embedding import CACHE_NAME

    assert weights.EMPTY_PROMPT_FILE == CACHE_NAME


# -- the render's error ----------------------------------------------------------------------------


def test_a_render_names_every_missing_file_of_both_passes_once(tmp_path):
    plate = write_plate(tmp_path / "plate", range(1, 3))
    models = tmp_path / "models"
    models.mkdir()
    (models / "marigold-e2e-ft-normals" / "unet").mkdir(parents=True)
    (models / "marigold-e2e-ft-normals" / "unet" / "config.json").write_text("{}")
    job = RenderJob(input=plate, output=str(tmp_path / "out" / "b.####.exr"), models_dir=str(models),
                    depth_model="buffer-anytime-depth-large", device="cpu")  # fmt: skip
    with pytest.raises(MissingWeightsError) as info:
        run_render(job)
    message = str(info.value)
    assert message.startswith("weights not found offline for buffer-anytime-depth-large, buffer-anytime-normal:")
    assert message.count("depth_anything_v2_vitl.pth") == 1
    assert "marigold-e2e-ft-normals/ (diffusers folder" in message
    for part in weights.folder_missing(models / "marigold-e2e-ft-normals"):
        assert part in message
    assert "unet/config.json" not in message  # present
    assert (
        f"bufferany-models download buffer-anytime-depth-large buffer-anytime-normal --to {models} "
        f"--accept-licence CC-BY-NC-4.0" in message
    )
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_the_command_targets_bufferany_models_when_set(tmp_path, monkeypatch):
    monkeypatch.setenv(weights.MODELS_ENV, str(tmp_path))
    error = weights.missing_weights_error({"raft-large": ("raft-large",)})
    assert f"bufferany-models download raft-large --to {tmp_path}" in str(error)
    monkeypatch.delenv(weights.MODELS_ENV)
    error = weights.missing_weights_error({"raft-large": ("raft-large",)})
    assert "fetch them with: bufferany-models download raft-large\n" in str(error)  # the Hugging Face cache


def test_random_weights_and_explicit_files_need_no_download(tmp_path):
    plate = write_plate(tmp_path / "plate", range(1, 3))
    job = RenderJob(input=plate, output=str(tmp_path / "out" / "b.####.exr"), passes=["depth"],
                    depth_model="video-depth-anything-tiny", weights="random", device="cpu",
                    depth_processing_size=28)  # fmt: skip
    assert run_render(job).frames_written == [1, 2]
    assert Path(tmp_path / "out" / "b.0001.exr").is_file()
