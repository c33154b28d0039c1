"""The server's one GPU worker: takes jobs from a queue, runs them through the pipeline one at a time,
and turns every way a job can end into a terminal event. Nothing a job does stops the worker."""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from bufferany_core import protocol
from bufferany_core.atomic import confine_outputs, within
from bufferany_core.errors import (
    BadArgumentsError,
    BufferanyError,
    CancelledError,
    ExitCode,
    OutOfMemoryError,
    OutputNotWritableError,
    is_out_of_memory,
    out_of_memory_error,
)
from bufferany_core.jobs import RenderJob

log = logging.getLogger("bufferany.server")

MAX_ERROR_CHARS = 4000  # an error message travels in one protocol message


def check_paths(spec: RenderJob, roots: tuple[str, ...] | list[str]) -> None:
    """The job's paths against the server's allowed roots (real paths): every path field absolute,
    the input's folder and the output's folder (after resolving links and `..`) below a root.
    Run at submission (a clear refusal) and again by the worker just before the job starts; the
    writes themselves are confined by `atomic.confine_outputs` whatever happens in between."""
    for name in protocol.PATH_FIELDS:
        value = getattr(spec, name)
        if protocol.names_a_path(name, value) and not os.path.isabs(value):
            raise BadArgumentsError(f"job field {name!r} must be an absolute path, got {value!r}")
    allowed = ", ".join(roots) or "none: start the server with --allow-root DIR"
    input_dir = os.path.realpath(os.path.dirname(spec.input))
    if not any(within(input_dir, root) for root in roots):
        raise BadArgumentsError(
            f"input {spec.input} is outside the folders this server may read and write (--allow-root: {allowed})"
        )
    if spec.output:
        output_dir = os.path.realpath(os.path.dirname(spec.output))
        if not any(within(output_dir, root) for root in roots):
            raise OutputNotWritableError(
                f"output {spec.output} is outside the folders this server may write to (--allow-root: {allowed})"
            )


class Job:
    """A submitted job: its spec, state and cancel flag, shared by the event loop and the worker."""

    def __init__(self, job_id: str, spec: RenderJob, *, client: str | None):
        self.id = job_id
        self.spec = spec
        self.client = client
        self.state = "queued"  # queued -> running -> finished | failed | cancelled
        self.cancel_requested = threading.Event()
        self.submitted_at = time.time()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.progress = 0.0
        self.frames_done = 0
        self.outcome: dict[str, Any] | None = None  # the terminal event
        self._lock = threading.Lock()

    def claim(self) -> bool:
        """Worker side: queued -> running, unless it was cancelled while it waited."""
        with self._lock:
            if self.state != "queued":
                return False
            self.state, self.started_at = "running", time.time()
            return True

    def cancel(self) -> str:
        """Loop side: a queued job is cancelled at once; a running one is asked to stop.
        Returns the state the job had."""
        with self._lock:
            previous = self.state
            if previous == "queued":
                self.state = "cancelled"
            if previous in ("queued", "running"):
                self.cancel_requested.set()
            return previous

    def finish(self, outcome: dict[str, Any]) -> None:
        """Loop side, as the terminal event `outcome` is published."""
        with self._lock:
            self.state, self.outcome = outcome["type"], outcome
            self.ended_at = self.ended_at or time.time()

    @property
    def terminal(self) -> bool:
        return self.state in ("finished", "failed", "cancelled")

    def record(self) -> dict[str, Any]:
        """What `status` and `list_jobs` report."""
        record = {
            "job_id": self.id,
            "state": self.state,
            "input": self.spec.input,
            "output": self.spec.output,
            "frames": self.spec.frames,
            "passes": list(self.spec.passes),
            "client": self.client,
            "submitted_at": self.submitted_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "progress": self.progress,
            "frames_done": self.frames_done,
        }
        if self.outcome is not None:
            record.update({k: v for k, v in self.outcome.items() if k in ("result", "error", "exit_code")})
        return record


def _release_gpu_memory() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _short(text: str) -> str:
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


class Worker(threading.Thread):
    """Runs queued jobs with `run_render`, keeping one PredictorCache for the server's lifetime.

    `emit(job, event)` is called from this thread for every event (pipeline events and the terminal
    one); the server hands them to its event loop, where the terminal one ends the job (`Job.finish`).
    A `None` in the queue stops the worker.
    """

    def __init__(
        self,
        jobs: queue.Queue[Job | None],
        *,
        emit: Callable[[Job, dict[str, Any]], None],
        device: str,
        max_models: int,
        allowed_roots: tuple[str, ...] = (),
        max_frames: int = 100_000,
        max_image_pixels: int = 8192 * 8192,
    ):
        super().__init__(name="bufferany-gpu-worker", daemon=True)
        self.max_frames, self.max_image_pixels = max_frames, max_image_pixels
        self.allowed_roots = tuple(allowed_roots)
        self.jobs = jobs
        self.emit = emit
        self.device = device
        self.max_models = max_models
        self.jobs_run = 0
        self._pipeline: tuple[Callable[..., Any], Any] | None = None  # (run_render, ObservedPredictorCache)

    def run(self) -> None:
        while (job := self.jobs.get()) is not None:
            if not job.claim():
                continue
            log.info("job %s started: %s", job.id, job.spec.input)
            outcome = self._execute(job)
            self.jobs_run += 1
            job.ended_at = time.time()  # when the worker let it go; it turns terminal as the loop publishes
            log.info(
                "job %s %s%s", job.id, outcome["type"], f": {outcome['error']}" if "error" in outcome else ""
            )
            self.emit(job, outcome)

    @property
    def predictors(self) -> Any:
        return None if self._pipeline is None else self._pipeline[1]

    def _load_pipeline(self) -> tuple[Callable[..., Any], Any]:
        # Imported on the first job, not at start-up: the server answers (and clients connect) at once,
        # and torch's import cost is paid by the first render only.
        if self._pipeline is None:
            from bufferany_core.pipeline.render import run_render
            from bufferany_core.service.observed_cache import ObservedPredictorCache

            self._pipeline = (run_render, ObservedPredictorCache(max_models=self.max_models))
        return self._pipeline

    def _check_input_size(self, spec: RenderJob) -> None:
        """The shot's frame count and the plate's size, from the file names and one header, before
        anything is decoded (the render rejects frames whose size differs from the first's)."""
        from bufferany_core.frames import FrameSequence, MovieReader, read_info

        sequence = FrameSequence.from_input(spec.input)
        span = sequence.frames[-1] - sequence.frames[0] + 1 if sequence.frames else 0
        if span > self.max_frames:
            raise BadArgumentsError(
                f"input {spec.input} spans {span} frames; this server takes at most {self.max_frames} per job"
            )
        if sequence.is_movie:
            with MovieReader(sequence.movie) as reader:
                width, height = reader.width, reader.height
        else:
            info = read_info(sequence.path(sequence.frames[0]))
            width, height = info.width, info.height
        if width * height > self.max_image_pixels:
            raise BadArgumentsError(
                f"input {spec.input} is {width}x{height} ({width * height} pixels); this server takes at most "
                f"{self.max_image_pixels} pixels per frame (--max-image-pixels)"
            )

    def _execute(self, job: Job) -> dict[str, Any]:
        spec = job.spec
        if spec.device == "auto" and self.device != "auto":
            spec.device = self.device
        try:
            check_paths(spec, self.allowed_roots)  # links may have changed since the job was accepted
            run_render, predictors = self._load_pipeline()
            self._check_input_size(spec)
            with confine_outputs(self.allowed_roots):  # every output write is checked as it happens
                result = run_render(
                    spec,
                    on_event=lambda event: self.emit(job, event),
                    should_cancel=job.cancel_requested.is_set,
                    predictors=predictors,
                )
        except CancelledError as exc:
            return {"type": "cancelled", "message": _short(str(exc) or "cancelled")}
        except BufferanyError as exc:
            if isinstance(exc, OutOfMemoryError):
                _release_gpu_memory()
            return {"type": "failed", "error": _short(str(exc)), "exit_code": int(exc.exit_code)}
        except Exception as exc:
            if is_out_of_memory(exc):
                _release_gpu_memory()
                error = out_of_memory_error(exc, doing=f"rendering {spec.input}", device=spec.device)
                return {"type": "failed", "error": _short(str(error)), "exit_code": int(error.exit_code)}
            log.debug("job %s: traceback of its internal error", job.id, exc_info=True)
            return {
                "type": "failed",
                "error": _short(f"internal error: {type(exc).__name__}: {exc}"),
                "exit_code": int(ExitCode.INTERNAL),
            }
        return {"type": "finished", "result": result.to_dict()}
