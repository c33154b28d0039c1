"""`--precision` / `RenderJob.precision`: parsing, the wire, farm arguments, the plan, and the CPU's
refusal of half floats (the CUDA side runs in tests/test_depth_loading.py on GPU machines)."""

from __future__ import annotations

import pytest
import torch
from pipeline_plates import write_plate

from bufferany_core import protocol
from bufferany_core.conventions import HEADER
from bufferany_core.errors import BadArgumentsError, ExitCode
from bufferany_core.frames import read_info
from bufferany_core.jobs import RenderJob, render_arguments
from bufferany_core.models.normal import load_normal_predictor
from bufferany_core.models.normal.predictor import NormalPredictor
from bufferany_core.models.precision import choose_precision
from bufferany_core.models.weights import RandomWeights
from bufferany_core.pipeline.cli import build_parser, job_from_args, main
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.render import plan_render, run_render


@pytest.mark.parametrize("value", ["fp8", "FP16", "half", ""])
def test_unknown_precision_names_the_field(value):
    with pytest.raises(BadArgumentsError, match=r"job field 'precision' must be one of auto, fp32, fp16, bf16"):
        RenderJob(input="/a.exr", precision=value)


@pytest.mark.parametrize(
    ("precision", "device", "chosen"),
    [
        ("auto", "cpu", "fp32"),
        ("auto", "cuda", "fp16"),
        ("auto", "cuda:1", "fp16"),
        ("auto", torch.device("cpu"), "fp32"),
        ("fp32", "cuda", "fp32"),
        ("bf16", "cuda:0", "bf16"),
        ("fp16", "auto", "fp16"),  # refused only where the model loads: a CPU workstation may submit for GPU nodes
        ("auto", "auto", "fp16" if torch.cuda.is_available() else "fp32"),
    ],
)
def test_auto_is_fp16_on_cuda_and_fp32_on_the_cpu(precision, device, chosen):
    assert choose_precision(precision, device) == chosen


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_floats_on_the_cpu_are_refused(precision):
    with pytest.raises(BadArgumentsError, match=f"--precision {precision} needs a CUDA device"):
        choose_precision(precision, "cpu")
    with pytest.raises(BadArgumentsError, match="needs a CUDA device"):
        PredictorCache().get("depth", "video-depth-anything-tiny", weights="random", device="cpu", precision=precision)
    with pytest.raises(BadArgumentsError, match="needs a CUDA device"):
        load_normal_predictor("buffer-anytime-normal-tiny", weights=RandomWeights(), device="cpu", precision=precision)


def test_precision_travels_the_wire_and_bad_values_are_rejected():
    job = RenderJob(input="/shots/a.####.exr", precision="bf16")
    wire = protocol.job_to_wire(job)
    assert wire["precision"] == "bf16"
    assert protocol.job_from_wire(wire) == job
    assert protocol.job_from_wire({"input": "/a.exr"}).precision == "auto"
    with pytest.raises(BadArgumentsError, match="'precision' has the wrong type"):
        protocol.job_from_wire({"input": "/a.exr", "precision": 16})
    with pytest.raises(BadArgumentsError, match="job field 'precision'"):
        protocol.job_from_wire({"input": "/a.exr", "precision": "fp64"})


def test_cli_and_farm_arguments_carry_the_precision():
    parse = build_parser().parse_args
    assert job_from_args(parse(["/p.####.exr"])).precision == "auto"
    job = RenderJob(input="/p.####.exr", frames="1-10", device="cuda", precision="fp32")
    args = render_arguments(job)
    assert args[args.index("--precision") + 1] == "fp32"
    assert job_from_args(parse(args)) == job
    assert "--precision" not in render_arguments(RenderJob(input="/p.####.exr"))  # the default stays implicit
    with pytest.raises(SystemExit) as exit_info:
        parse(["/p.####.exr", "--precision", "fp64"])
    assert exit_info.value.code == ExitCode.BAD_ARGUMENTS


def test_dry_run_shows_the_chosen_precision(tmp_path, capsys):
    pattern = write_plate(tmp_path / "plate", range(1, 5))
    assert main([pattern, "--device", "cpu", "--dry-run"]) == ExitCode.OK
    assert "Precision: fp32 (auto)" in capsys.readouterr().out
    assert main([pattern, "--device", "cuda", "--precision", "bf16", "--dry-run"]) == ExitCode.OK
    assert "Precision: bf16\n" in capsys.readouterr().out
    assert main([pattern, "--device", "cpu", "--precision", "fp16", "--dry-run"]) == ExitCode.BAD_ARGUMENTS
    assert "--precision fp16 needs a CUDA device and this job runs on cpu" in capsys.readouterr().err


def test_settings_change_with_half_floats_but_not_for_fp32(tmp_path):
    pattern = write_plate(tmp_path / "plate", range(1, 5))
    settings = {
        (precision, device): plan_render(RenderJob(input=pattern, precision=precision, device=device)).settings
        for precision, device in [("auto", "cpu"), ("fp32", "cpu"), ("fp32", "cuda"), ("auto", "cuda"), ("fp16", "cuda"), ("bf16", "cuda")]
    }
    assert settings["auto", "cpu"] == settings["fp32", "cpu"] == settings["fp32", "cuda"]
    assert settings["auto", "cuda"] == settings["fp16", "cuda"]
    assert len({settings["fp32", "cpu"], settings["fp16", "cuda"], settings["bf16", "cuda"]}) == 3


@pytest.mark.skipif(torch.cuda.is_available(), reason="device auto resolves to the CPU only without CUDA")
def test_fp16_with_auto_device_on_a_cpu_machine_fails_before_writing(tmp_path):
    pattern = write_plate(tmp_path / "plate", range(1, 5))
    job = RenderJob(input=pattern, passes=("depth",), depth_model="video-depth-anything-tiny", weights="random", precision="fp16")
    with pytest.raises(BadArgumentsError, match="--precision fp16 needs a CUDA device and this job runs on cpu"):
        run_render(job)
    assert not list((tmp_path / "plate").glob("*_buffers*"))


def test_header_records_the_precision(tmp_path):
    pattern = write_plate(tmp_path / "plate", range(1, 4), size=(32, 16))
    job = RenderJob(
        input=pattern,
        passes=("depth",),
        depth_model="video-depth-anything-tiny",
        weights="random",
        device="cpu",
        window=6, overlap=2, depth_processing_size=28, normal_processing_size=28,
    )
    run_render(job)
    assert read_info(tmp_path / "plate" / "shot_buffers.0002.exr").metadata[HEADER.precision] == "fp32"


def test_normal_autocast_runs_the_denoiser_only_and_decodes_in_float32():
    """bf16 autocast exists on the CPU too, so the predictor's half-float path runs here even though
    the loader keeps CPU jobs in fp32."""
    loaded = load_normal_predictor("buffer-anytime-normal-tiny", weights=RandomWeights(seed=2), device="cpu", processing_size=32)
    half = NormalPredictor(
        loaded.model, info=loaded.info, device=loaded.device, processing_size=32, decode_chunk=4, precision="bf16"
    )
    frames = torch.rand(3, 3, 24, 40, generator=torch.Generator().manual_seed(0))
    full, reduced = loaded.predict(frames), half.predict(frames)
    assert reduced.dtype == torch.float32 and reduced.shape == (3, 3, 24, 40)
    assert torch.allclose(reduced.norm(dim=1), torch.ones(3, 24, 40), atol=1e-4)
    assert not torch.equal(full, reduced)  # the denoiser really ran in bf16
    assert (full * reduced).sum(dim=1).mean() > 0.95  # mean cosine: the same normals, give or take rounding
