"""`bufferany-render`: depth and normal AOV passes for a plate, headless (farm-friendly).

Prints `Progress: NN%` and `ALF_PROGRESS NN%` (Deadline, Tractor) and one line per finished frame,
flushed; exits with `bufferany_core.errors.ExitCode`.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from bufferany_core import __version__
from bufferany_core.cli_support import print_event, print_event_json, run_cli, say
from bufferany_core.errors import CancelledError, ExitCode
from bufferany_core.jobs import RenderJob, cli_option, job_fields, parse_passes

PROG = "bufferany-render"


def add_job_arguments(parser: argparse.ArgumentParser) -> None:
    """One option per RenderJob field, from the field's own description and default."""
    for f, spec in job_fields():
        help_text = spec.help.replace("%", "%%")  # argparse formats help with %
        if spec.flag is None:
            parser.add_argument(f.name, help=help_text)
            continue
        names = [spec.short] if spec.short else []
        names.append(cli_option(f.name, spec))
        if spec.kind == "flag":
            parser.add_argument(*names, dest=f.name, action="store_true", help=help_text)
            continue
        kwargs: dict = {"dest": f.name, "default": f.default}
        if spec.metavar:
            kwargs["metavar"] = spec.metavar
        if spec.kind == "choice":
            kwargs["choices"] = spec.choices
            if spec.bare is not None:  # `--stabilize` alone means `--stabilize on`
                kwargs.update(nargs="?", const=spec.bare)
            help_text += f" (default: {f.default})"
        elif spec.kind == "int":
            kwargs["type"] = int
        elif spec.kind == "passes":  # checked in job_from_args, under run_cli's messages and exit codes
            kwargs["default"] = ",".join(f.default)
            help_text += f" (default: {kwargs['default']})"
        parser.add_argument(*names, help=help_text, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Render temporally stable depth (depth.Z) and normal (N.X/Y/Z) passes for a plate.",
        epilog="Exit codes: see README.md (2 bad arguments, 3 input not found, 10 missing weights, 11 out of GPU memory, ...).",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_job_arguments(p)
    p.add_argument(
        "--processing-size",
        type=int,
        metavar="N",
        help="shorthand for --depth-processing-size N --normal-processing-size N (each keeps its own meaning)",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would be rendered, render nothing")
    p.add_argument(
        "--log-format",
        choices=("text", "json"),
        default="text",
        help="text: Progress/ALF_PROGRESS and frame lines (default); json: one JSON object per event on stdout",
    )
    farm = p.add_argument_group("render farms (docs/farm.md)")
    farm.add_argument("--deadline-job", metavar="DIR", help="write Deadline 10 job_info.job and plugin_info.job to DIR")
    farm.add_argument("--opencue-job", metavar="FILE", help="write the OpenCue job spec (XML, built with pyoutline) to FILE")
    farm.add_argument("--openjd-job", metavar="DIR", help="write an Open Job Description template (AWS Deadline Cloud) to DIR")
    farm.add_argument("--opencue-cmd", action="store_true", help="print the OpenCue layer command and exit")
    farm.add_argument("--chunk-size", type=int, default=10, help="frames per farm task (default 10)")
    farm.add_argument("--path-map", action="append", default=[], metavar="FROM=TO",
                      help="a path under FROM here is under TO on the workers (repeatable; e.g. /mnt/shots=S:\\shots)")
    farm.add_argument("--farm-executable", metavar="CMD", help="the command that runs bufferany-render on the workers "
                      "(default: this installation's, absolute)")
    farm.add_argument("--farm-env", action="append", default=[], metavar="NAME=VALUE",
                      help="an environment variable for every task (repeatable; BUFFERANY_MODELS is passed when set)")
    farm.add_argument("--farm-name", metavar="NAME", help="the farm job's name (default: bufferany <plate>)")
    farm.add_argument("--farm-pool", metavar="POOL", help="Deadline pool")
    farm.add_argument("--farm-secondary-pool", metavar="POOL", help="Deadline secondary pool")
    farm.add_argument("--farm-group", metavar="GROUP", help="Deadline group")
    farm.add_argument("--farm-priority", type=int, metavar="N", help="priority 0-100 (Deadline, OpenCue)")
    farm.add_argument("--farm-comment", metavar="TEXT", help="Deadline comment")
    farm.add_argument("--farm-machine-limit", type=int, metavar="N", help="Deadline machine limit (0: none)")
    farm.add_argument("--farm-gpus", type=int, default=0, metavar="N", help="GPUs each task reserves (OpenCue, OpenJD)")
    farm.add_argument("--farm-service", metavar="NAME", help="OpenCue service")
    farm.add_argument("--farm-tags", metavar="A,B", help="OpenCue tags")
    farm.add_argument("--farm-show", default="bufferany", metavar="SHOW", help="OpenCue show (default bufferany)")
    return p


def job_from_args(ns: argparse.Namespace) -> RenderJob:
    values = {f.name: parse_passes(getattr(ns, f.name)) if spec.kind == "passes" else getattr(ns, f.name) for f, spec in job_fields()}
    if ns.processing_size is not None:
        for name in ("depth_processing_size", "normal_processing_size"):
            if values[name] is None:
                values[name] = ns.processing_size
    return RenderJob(**values)


def farm_options(ns: argparse.Namespace):
    from bufferany_core.pipeline import farm

    return farm.FarmOptions(
        chunk_size=ns.chunk_size,
        name=ns.farm_name,
        path_maps=[farm.PathMap.parse(text) for text in ns.path_map],
        executable=ns.farm_executable,
        environment=farm.parse_environment(ns.farm_env),
        pool=ns.farm_pool,
        secondary_pool=ns.farm_secondary_pool,
        group=ns.farm_group,
        priority=ns.farm_priority,
        comment=ns.farm_comment,
        machine_limit=ns.farm_machine_limit,
        gpus=ns.farm_gpus,
        service=ns.farm_service,
        tags=[t for t in (ns.farm_tags or "").split(",") if t],
        show=ns.farm_show,
    )


def _is_farm(ns: argparse.Namespace) -> bool:
    return bool(ns.deadline_job or ns.opencue_job or ns.openjd_job or ns.opencue_cmd)


def _farm_or_dry_run(ns: argparse.Namespace, job: RenderJob) -> None:
    from bufferany_core.frames import format_frame_spec
    from bufferany_core.pipeline import farm
    from bufferany_core.pipeline.render import plan_render

    options = farm_options(ns) if _is_farm(ns) else None
    plan = plan_render(job)
    shot = f"{plan.shot[0]}-{plan.shot[-1]}"
    if options is not None:
        farm_shot = farm.FarmShot(
            frames=plan.requested, shot=plan.shot, output_pattern=plan.output_pattern, input_pattern=plan.input_pattern
        )
        if ns.opencue_cmd:
            say(farm.opencue_command(job, farm_shot, options))
        if ns.deadline_job:
            paths = farm.write_deadline_job(job, ns.deadline_job, farm_shot, options)
            say(f"Deadline job written; submit with: deadlinecommand {shlex.join(map(str, paths))}")
        if ns.opencue_job:
            from functools import partial
            from pathlib import Path

            from bufferany_core.atomic import atomic_write

            spec = farm.opencue_spec(job, farm_shot, options)
            atomic_write(ns.opencue_job, partial(Path.write_text, data=spec + "\n", encoding="utf-8"))
            say(f"OpenCue job spec written: {ns.opencue_job}")
        if ns.openjd_job:
            template, _ = farm.write_openjd_job(job, ns.openjd_job, farm_shot, options)
            say(f"OpenJD job written; submit with: deadline bundle submit {shlex.quote(str(template.parent))}")
    if ns.dry_run:
        say(f"Input: {plan.input_pattern}  shot {shot}")
        say(f"Output: {plan.output_pattern}")
        say(f"To render: {format_frame_spec(plan.to_render) or 'nothing'} ({len(plan.to_render)} frame(s))")
        if plan.finished:
            say(f"Already rendered (skipped): {format_frame_spec(plan.finished)}")
        say(f"Windows to run: {len(plan.windows)}; reference and key frames: {format_frame_spec(plan.key_frames)}")
        say(f"Precision: {plan.precision}" + (" (auto)" if job.precision == "auto" else ""))
        for pass_name, choice in plan.stabilize.items():
            say(f"Stabiliser, {pass_name}: {choice.describe()}")
    if plan.conflicts:
        from bufferany_core.pipeline.outputs import conflict_error

        error = conflict_error(plan.output, plan.conflicts, plan.settings_values)
        if ns.dry_run:
            raise error  # the run would stop here: the same message and exit code
        say(f"WARNING: every task will stop before rendering: {error}", stream=sys.stderr)


class Terminated(CancelledError):
    """SIGTERM (a farm stopping the task): raised where the render is, so the frame in hand is abandoned
    (its temporary file removed: writes are atomic) and the finished frames stay."""


def _on_sigterm(signum, frame) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one stop is enough; a second SIGTERM must not interrupt the cleanup
    raise Terminated("terminated (SIGTERM)")


def _missing_folders(folder: Path) -> list[Path]:
    """`folder` and its parents that do not exist yet (deepest first): what a render would create."""
    missing = []
    for candidate in [folder, *folder.parents]:
        if candidate.exists():
            break
        missing.append(candidate)
    return missing


class _Timing:
    """Per-frame time and the end summary of a render (frames, elapsed, frames per second, peak memory, device)."""

    def __init__(self, job: RenderJob, *, json_lines: bool = False):
        self.job = job
        self.json_lines = json_lines
        self.start = self.last = time.monotonic()
        self.written: list[int] = []
        self.total = 0

    def __call__(self, event: dict) -> None:
        if event["type"] == "started":
            self.total = len(event["frames"])
            self.start = self.last = time.monotonic()
        self.emit(event)
        if event["type"] == "frame_done":
            now = time.monotonic()
            self.written.append(event["frame"])
            seconds, done = now - self.last, len(self.written)
            self.emit(
                {"type": "frame_time", "frame": event["frame"], "seconds": seconds, "done": done, "total": self.total},
                f"Time: frame {event['frame']} took {seconds:.2f}s ({done}/{self.total})",
            )
            self.last = now

    def emit(self, event: dict, text: str | None = None) -> None:
        """An event as the chosen log format prints it (`text`: the line for events of our own)."""
        if self.json_lines:
            print_event_json(event)
        elif text is None:
            print_event(event)
        else:
            say(text)

    def finish(self, result) -> None:
        elapsed = time.monotonic() - self.start
        fps = len(self.written) / elapsed if elapsed > 0 else 0.0
        peak = _peak_memory()
        self.emit(
            {
                "type": "summary",
                "written": result.frames_written,
                "skipped": result.frames_skipped,
                "output": result.output_pattern,
                "elapsed_s": elapsed,
                "frames_per_s": fps,
                "peak_memory": peak,
                "device": self.job.device,
            },
            f"Done: {len(result.frames_written)} written, {len(result.frames_skipped)} skipped ({result.output_pattern})\n"
            f"Summary: {len(self.written)} frame(s) in {elapsed:.1f}s ({fps:.2f} frames/s), peak memory {peak}, "
            f"device {self.job.device}",
        )


def _refuse_huge_frame_specs(job: RenderJob) -> None:
    """Frame specs naming more frames than any plate holds are refused before torch loads (a spec
    the farm has not expanded yet is left to the plan, which names the token)."""
    from bufferany_core.errors import BadArgumentsError
    from bufferany_core.frames.framespec import MAX_FRAMES, count_frames

    for flag, spec in (("--frames", job.frames), ("--shot-range", job.shot_range)):
        if spec is None:
            continue
        try:
            count = count_frames(spec)
        except BadArgumentsError:
            continue
        if count > MAX_FRAMES:
            raise BadArgumentsError(f"{flag} {spec!r} names {count} frames; the limit is {MAX_FRAMES}")


def _peak_memory() -> str:
    parts = []
    try:
        import resource

        parts.append(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB RAM")  # KiB on Linux
    except (ImportError, OSError):
        pass
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        parts.append(f"{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB GPU")
    return ", ".join(parts) or "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)

    def render() -> int:
        job = job_from_args(ns)
        _refuse_huge_frame_specs(job)  # before the heavy imports: a mistyped range answers at once
        if ns.dry_run or _is_farm(ns):
            _farm_or_dry_run(ns, job)
            return ExitCode.OK
        from bufferany_core.frames import format_frame_spec
        from bufferany_core.pipeline.render import run_render

        created = _missing_folders(Path(job.output).expanduser().absolute().parent) if job.output else []
        timing = _Timing(job, json_lines=ns.log_format == "json")
        previous = signal.signal(signal.SIGTERM, _on_sigterm)
        try:
            result = run_render(job, on_event=timing)
        except BaseException as exc:
            for folder in created:  # a failed run leaves no empty folder it made
                with contextlib.suppress(OSError):
                    folder.rmdir()
            if isinstance(exc, Terminated):
                done = format_frame_spec(timing.written) or "none"
                say(
                    f"{PROG}: terminated (SIGTERM): {len(timing.written)} frame(s) finished this run ({done}), the frame in hand "
                    f"abandoned (no partial file); run the same command again to resume (finished frames are skipped); "
                    f"exit {int(ExitCode.CANCELLED)}",
                    stream=sys.stderr,
                )
                return ExitCode.CANCELLED
            raise
        finally:
            signal.signal(signal.SIGTERM, previous)
        timing.finish(result)
        return ExitCode.OK

    return run_cli(PROG, render, interrupted="interrupted; finished frames are complete, re-run to resume")


if __name__ == "__main__":
    sys.exit(main())
