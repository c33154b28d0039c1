"""`bufferany-render`: depth and normal AOV passes for a plate, headless (farm-friendly).

Prints `Progress: NN%` and `ALF_PROGRESS NN%` (Deadline, Tractor) and one line per finished frame,
flushed; exits with `bufferany_core.errors.ExitCode`.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Sequence

from bufferany_core.cli_support import run_cli, say
from bufferany_core.conventions import DEFAULT_DEPTH_CONVENTION
from bufferany_core.errors import ExitCode
from bufferany_core.jobs import DEPTH_CONVENTIONS, PASSES, PRECISIONS, RenderJob

PROG = "bufferany-render"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Render temporally stable depth (depth.Z) and normal (N.X/Y/Z) passes for a plate.",
        epilog="Exit codes: see README.md (2 bad arguments, 3 input not found, 10 missing weights, 11 out of GPU memory, ...).",
    )
    p.add_argument("input", help="plate: shot.####.exr, shot.%%04d.exr, shot.$F4.exr, one frame of a sequence, or a movie")
    p.add_argument("-o", "--output", help="output sequence (default: <name>_buffers.####.exr beside the input)")
    p.add_argument("--frames", help="frames to render: 1001-1100, 1-100x5, 5,10 (default: all)")
    p.add_argument("--shot-range", help="the whole shot when --frames is one farm chunk of it (same windows and anchors)")
    p.add_argument("--passes", default=",".join(PASSES), help="comma-separated subset of depth,normal (default: both)")
    p.add_argument("--depth-model", help="depth model registry name")
    p.add_argument("--normal-model", help="normal model registry name")
    p.add_argument("--weights", help="weights file, or random[:SEED] for deterministic untrained weights")
    p.add_argument("--depth-temporal-weights", metavar="PATH", help="trained temporal layers (.safetensors from bufferany-train) for the depth model")
    p.add_argument("--normal-temporal-weights", metavar="PATH", help="trained temporal layers (.safetensors from bufferany-train) for the normal model")
    p.add_argument("--models-dir", help="folder holding downloaded weights (default: $BUFFERANY_MODELS)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="auto",
        help="float type the models run in: auto (fp16 on CUDA, fp32 on the CPU), fp32, or fp16/bf16 (CUDA only: refused on the CPU)",
    )
    p.add_argument("--colorspace", dest="input_colorspace", help="the plate's colour space (default: by file type)")
    p.add_argument("--depth-convention", choices=DEPTH_CONVENTIONS, default=DEFAULT_DEPTH_CONVENTION.value)
    p.add_argument("--window", type=int, help="model slots per window (default: the model's)")
    p.add_argument("--overlap", type=int, help="frames shared by consecutive windows (default: the model's)")
    p.add_argument("--processing-size", type=int, help="the model's working resolution (default: the model's)")
    p.add_argument("--stabilize", action="store_true", help="run the optical-flow stabiliser as a final stage")
    p.add_argument("--include-plate", action="store_true", help="also carry the plate's RGBA into the output")
    p.add_argument("--overwrite", action="store_true", help="re-render frames already finished")
    p.add_argument("--dry-run", action="store_true", help="print what would be rendered, render nothing")
    farm = p.add_argument_group("render farms")
    farm.add_argument("--deadline-job", metavar="DIR", help="write Deadline job_info.job and plugin_info.job to DIR")
    farm.add_argument("--chunk-size", type=int, default=10, help="frames per Deadline task (default 10)")
    farm.add_argument("--opencue-cmd", action="store_true", help="print the OpenCue layer command and exit")
    return p


def job_from_args(ns: argparse.Namespace) -> RenderJob:
    options = {name: getattr(ns, name) for name in ("window", "overlap", "processing_size") if getattr(ns, name) is not None}
    passes = tuple(p.strip() for p in ns.passes.split(",") if p.strip())
    return RenderJob(
        input=ns.input,
        output=ns.output,
        frames=ns.frames,
        shot_range=ns.shot_range,
        passes=passes,
        depth_model=ns.depth_model,
        normal_model=ns.normal_model,
        weights=ns.weights,
        depth_temporal_weights=ns.depth_temporal_weights,
        normal_temporal_weights=ns.normal_temporal_weights,
        models_dir=ns.models_dir,
        device=ns.device,
        precision=ns.precision,
        input_colorspace=ns.input_colorspace,
        depth_convention=ns.depth_convention,
        stabilize=ns.stabilize,
        include_plate=ns.include_plate,
        overwrite=ns.overwrite,
        options=options,
    )


def print_event(event: dict) -> None:
    kind = event["type"]
    if kind == "started":
        say(f"Rendering {len(event['frames'])} frame(s) to {event['output']}")
        if event["untrained"]:
            say(
                "WARNING: UNTRAINED WEIGHTS: these passes come from random weights and mean nothing; "
                "the output is marked bufferany/untrained=1",
                stream=sys.stderr,
            )
    elif kind == "progress":
        percent = int(event["percent"])
        say(f"Progress: {percent}%")
        say(f"ALF_PROGRESS {percent}%")
    elif kind == "frame_done":
        say(f"Frame {event['frame']} written: {event['path']}")
    elif kind == "frame_skipped":
        say(f"Frame {event['frame']} already rendered, skipped: {event['path']}")
    elif kind == "log":
        if event.get("level") == "warning":
            say(f"WARNING: {event['message']}", stream=sys.stderr)
        else:
            say(event["message"])


def _farm_or_dry_run(ns: argparse.Namespace, job: RenderJob) -> None:
    from bufferany_core.frames import format_frame_spec
    from bufferany_core.pipeline import farm
    from bufferany_core.pipeline.render import plan_render

    plan = plan_render(job)
    shot = f"{plan.shot[0]}-{plan.shot[-1]}"
    if ns.opencue_cmd:
        say(farm.opencue_command(job, shot_range=shot))
    if ns.deadline_job:
        paths = farm.write_deadline_job(
            job, ns.deadline_job, shot_range=(plan.shot[0], plan.shot[-1]), output_pattern=plan.output_pattern, chunk_size=ns.chunk_size
        )
        say(f"Deadline job written; submit with: deadlinecommand {shlex.join(map(str, paths))}")
    if ns.dry_run:
        say(f"Input: {plan.input_pattern}  shot {shot}")
        say(f"Output: {plan.output_pattern}")
        say(f"To render: {format_frame_spec(plan.to_render) or 'nothing'} ({len(plan.to_render)} frame(s))")
        if plan.finished:
            say(f"Already rendered (skipped): {format_frame_spec(plan.finished)}")
        say(f"Windows to run: {len(plan.windows)}; anchor frames: {format_frame_spec(plan.anchor_frames)}")
        say(f"Precision: {plan.precision}" + (" (auto)" if job.precision == "auto" else ""))


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)

    def render() -> int:
        job = job_from_args(ns)
        if ns.dry_run or ns.deadline_job or ns.opencue_cmd:
            _farm_or_dry_run(ns, job)
            return ExitCode.OK
        from bufferany_core.pipeline.render import run_render

        result = run_render(job, on_event=print_event)
        say(f"Done: {len(result.frames_written)} written, {len(result.frames_skipped)} skipped ({result.output_pattern})")
        return ExitCode.OK

    return run_cli(PROG, render, parser=parser, interrupted="interrupted; finished frames are complete, re-run to resume")


if __name__ == "__main__":
    sys.exit(main())
