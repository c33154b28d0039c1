"""Rendering a shot: windows -> models -> alignment to the shot's reference -> cross-fade -> AOV EXRs.

Memory stays bounded whatever the shot's length: frames are read when a window needs them and
dropped when no later window does, and each output frame is written as soon as the last window
covering it has run.

Chunk agreement (the default farm schedule): the shot's first window, contiguous frames, is predicted
on its own and normalised once (0 far, 1 near): the shot's reference. Every later window sees two key
frames where Video Depth Anything's own inference puts them (the shot's first frame and the frame 12
before its own, `windows.key_positions`) and is aligned (least-squares scale and shift of its inverse
depth) to
  - the reference through its key frames, and
  - the previous window's prediction on the frames they share, itself aligned on its key frames only,
so a window's result depends on the shot's frames and the settings alone, never on where a chunk
starts: a farm chunk runs the windows covering its frames plus one before for context and writes
the same numbers one run of the whole shot would. `--schedule official` runs the official inference
instead (`official_schedule`), front to back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import cast

import numpy as np
import torch

from bufferany_core.atomic import make_output_folder
from bufferany_core.errors import (
    BadArgumentsError,
    CancelledError,
    DiskFullError,
    FrameRangeError,
    MissingFramesError,
    MissingWeightsError,
    NonFiniteError,
    OutputNotWritableError,
    PartialFailureError,
    UnreadableImageError,
    out_of_memory_error,
)
from bufferany_core.flow.backends import load_flow_estimator
from bufferany_core.frames import (
    FrameSequence,
    default_colorspace,
    format_frame_spec,
    output_sequence_for,
    parse_frame_spec,
    read_channels,
    validate_sequence,
)
from bufferany_core.jobs import RenderJob, is_random_weights
from bufferany_core.models.api import PassName, PassPredictor
from bufferany_core.models.catalog import ModelEntry, get_model_entry
from bufferany_core.models.precision import choose_precision
from bufferany_core.models.weights import require_weights, sha256_of
from bufferany_core.pipeline import farm, official_schedule, outputs, square_pixels
from bufferany_core.pipeline.align import reference_range
from bufferany_core.pipeline.feed import FedFrame, PlateFeed, WriteBehind, stack_on, to_host
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.stabilizing import (
    ShotStabilizer,
    StabilizeChoice,
    decide,
    stabilizer_positions,
    stabilizer_settings,
)
from bufferany_core.pipeline.windows import Window, WindowSchedule, key_positions
from bufferany_core.pipeline.writer import (
    ExistingFrame,
    FrameState,
    PreparedFrame,
    Provenance,
    fingerprint,
    frame_state,
    prepare_frame,
    settings_json,
    write_prepared,
)
from bufferany_core.scale_shift import fit_scale_shift

KEY_FRAMES = 2  # key frames each later depth window sees before its own frames (windows.key_positions)
ALIGN_STRIDE = 4  # least squares on every 4th pixel in each axis: plenty of samples, 16x cheaper
# Output frames waiting to be written (`feed`), prepared (renormalised, converted, depth range) that
# many at once: the loop hands in a window's finished frames together and waits while the writer is
# this far behind; the reader keeps reading meanwhile, up to a window's new frames ahead
# (`_read_ahead`), so reading the next window overlaps writing the last.
WRITE_BEHIND = 3
# Plate frames read at once: each read's decompression and colour conversion is threaded inside
# OpenImageIO already; a few reads at once keep the cores busy through the parts that are not.
READ_THREADS = max(1, min(4, os.cpu_count() or 1))

Events = Callable[[dict], None]


@dataclass
class RenderResult:
    frames_written: list[int] = field(default_factory=list)
    frames_skipped: list[int] = field(default_factory=list)
    output_pattern: str = ""
    untrained: bool = False
    stabilized: dict[str, dict] = field(default_factory=dict)  # pass -> {"stabilized": bool, "reason": str}

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class RenderPlan:
    """What a job will do, worked out without loading a model (also what `--dry-run` prints)."""

    job: RenderJob
    sequence: FrameSequence
    output: FrameSequence
    shot: list[int]  # the shot's frames (windows and key frames are laid over these)
    requested: list[int]  # frames this job is responsible for
    to_render: list[int]
    finished: list[int]  # requested frames already written with the same settings
    schedule: WindowSchedule  # the lead pass's (depth when it runs): the depth windows and key frames
    settings: str  # fingerprint recorded in each output header
    precision: str  # resolved for the job's device: fp32 | fp16 | bf16
    temporal_sha256: dict[str, str] = field(default_factory=dict)  # pass -> sha256 of its temporal weights
    processing_sizes: dict[str, int] = field(default_factory=dict)  # pass -> the model's working resolution
    dropped: list[int] = field(default_factory=list)  # asked for but outside the shot (farm overshoot)
    stabilize: dict[str, StabilizeChoice] = field(default_factory=dict)  # pass -> stabilised or not, and why
    pixel_aspect: float = 1.0  # the plate's; the models and the flow see it with square pixels
    schedules: dict[str, WindowSchedule] = field(default_factory=dict)  # pass -> its own windows (catalogue entry)
    settings_values: dict = field(default_factory=dict)  # what `settings` is the fingerprint of
    conflicts: dict[int, ExistingFrame] = field(default_factory=dict)  # frames that exist from other settings

    @property
    def stabilized_passes(self) -> list[str]:
        return [p for p, choice in self.stabilize.items() if choice.stabilize]

    @property
    def input_pattern(self) -> str:
        return self.sequence.hash_pattern

    @property
    def output_pattern(self) -> str:
        return self.output.hash_pattern

    @property
    def positions(self) -> list[int]:
        """Shot positions to compute: the frames to render and, with the stabiliser, every frame of the
        stabiliser windows covering them (computed and stabilised with them, not written)."""
        index = {frame: pos for pos, frame in enumerate(self.shot)}
        wanted = sorted(index[f] for f in self.to_render)
        if not self.stabilized_passes:
            return wanted
        return stabilizer_positions(len(self.shot), wanted)

    @property
    def windows(self) -> list[Window]:
        return self.schedule.windows_for(self.positions)

    def windows_of(self, pass_name: str) -> list[Window]:
        """The windows a pass runs on its own schedule: depth, those covering the positions and the one before
        each (its prediction on the shared frames enters the next one's alignment); normals, those covering
        them (nothing is aligned across normal windows, only cross-faded)."""
        schedule = self.schedules.get(pass_name, self.schedule)
        if pass_name == "depth":
            return schedule.windows_for(self.positions)
        wanted = set(self.positions)
        return [w for w in schedule.windows if any(p in wanted for p in w.positions)]

    @property
    def key_frames(self) -> list[int]:
        """Frames the farm depth windows read beyond their own: the shot's first window (the reference
        every window is aligned to through its key frames) and each window's key frames."""
        if "depth" not in self.job.passes or self.job.schedule != "farm":
            return []
        positions = set(self.schedule.windows[0].positions) | {k for w in self.windows for k in key_positions(w)}
        return [self.shot[p] for p in sorted(positions)]


def plan_render(job: RenderJob) -> RenderPlan:
    """Resolve input, shot, output, windows and finished frames, once, without loading a model: the
    models' schedules come from their catalogue entries (dry runs and real runs plan alike)."""
    entries = {p: get_model_entry(p, getattr(job, f"{p}_model")) for p in job.passes}
    for name, value in (("frames", job.frames), ("shot_range", job.shot_range)):
        if value is not None:
            farm.check_expanded(value, field=f"--{name.replace('_', '-')}")
    if job.weights and not is_random_weights(job.weights) and len(job.passes) > 1:
        raise BadArgumentsError("--weights PATH names one model's weights: render one pass with it (--passes depth or normal)")
    temporal = _temporal_weights_sha256(job)
    precision = choose_precision(job.precision, job.device)
    sequence = FrameSequence.from_input(job.input)
    if job.shot_range is not None:
        shot = sequence.select(job.shot_range)
        requested = parse_frame_spec(job.frames) if job.frames is not None else list(shot)
        requested, dropped = farm.clamp_to_shot(requested, shot, spec=job.frames or "")
    else:
        shot = sequence.select(job.frames)
        requested, dropped = list(shot), []
    if len(set(shot)) != len(shot) or shot != sorted(shot):
        raise FrameRangeError(f"the shot's frames must be increasing without repeats, got {format_frame_spec(shot)}")
    output = FrameSequence.for_output(job.output) if job.output else output_sequence_for(sequence)
    if output.is_movie or Path(output.hash_pattern).suffix.lower() != ".exr":
        raise BadArgumentsError(f"output {output.hash_pattern} must be an EXR sequence (.exr)")
    outputs.check_not_input(sequence, output, requested)  # links, `..`, letter case (issue 18)
    official_schedule.check_job(job, entries.get("depth"))
    schedules = _window_schedules(job, entries, shot_length=len(shot))
    schedule = schedules["depth" if "depth" in schedules else "normal"]
    processing_sizes = {p: _processing_size(job, p, entry) for p, entry in entries.items()}
    pixel_aspect = square_pixels.plate_pixel_aspect(sequence, shot[0])
    stabilize = decide(job, entries)
    stabilized = [p for p, choice in stabilize.items() if choice.stabilize]
    recorded = job.pixel_settings()
    recorded.pop("stabilize", None)  # recorded as the passes it stabilises
    for resolved in (
        "input", "window", "overlap", "precision", "depth_temporal_weights", "normal_temporal_weights",
        "depth_processing_size", "normal_processing_size",
    ):
        recorded.pop(resolved, None)  # recorded below as what they resolve to
    values = dict(
        {
            **recorded,
            "input": Path(sequence.hash_pattern).name,  # the plate by name and content, not by where it is mounted
            "plate": outputs.plate_signature(sequence, shot),
            **outputs.weights_by_content(job),
            "shot": [shot[0], shot[-1], len(shot)],
            # "keys-official": farm windows carry key frames where the official inference puts them (issue 16)
            "schedule": [schedule.size, schedule.overlap, schedule.keys, "keys-official"],
            # with depth, the normal model runs its own windows (its catalogue entry's), not the depth model's
            **({"normal_schedule": [schedules["normal"].size, schedules["normal"].overlap]} if len(schedules) > 1 else {}),
            **({"depth_schedule": job.schedule} if job.schedule != "farm" else {}),
            # the depth model's default size follows the official rules (1280 cap, wide plates lower)
            **({"depth_sizes": "official"} if "depth" in job.passes and job.depth_processing_size is None else {}),
            "processing_sizes": processing_sizes,
            # anamorphic plates reach the models desqueezed (absent for square pixels: earlier renders stay valid)
            **({"square_pixels": pixel_aspect} if not square_pixels.is_square(pixel_aspect) else {}),
            # by content: retraining into the same file re-renders
            **({"temporal_weights": temporal} if temporal else {}),
            # absent when nothing is stabilised, so unstabilised renders from before `auto` stay finished
            **({"stabilized": stabilized, "stabilizer": stabilizer_settings()} if stabilized else {}),
            # absent for fp32, so outputs rendered before precision was a setting stay finished
            **({"precision": precision} if precision != "fp32" else {}),
        }
    )
    settings = fingerprint(values)
    existing = {} if job.overwrite else {f: frame_state(output.path(f), settings) for f in requested}
    finished = [f for f, e in existing.items() if e.state is FrameState.FINISHED]
    conflicts = {f: e for f, e in existing.items() if e.state is FrameState.DIFFERENT}  # refused without --overwrite
    done = set(finished)
    plan = RenderPlan(
        job=job,
        sequence=sequence,
        output=output,
        shot=shot,
        requested=requested,
        to_render=[f for f in requested if f not in done],
        finished=finished,
        schedule=schedule,
        schedules=schedules,
        settings=settings,
        precision=precision,
        temporal_sha256=temporal,
        processing_sizes=processing_sizes,
        dropped=dropped,
        stabilize=stabilize,
        pixel_aspect=pixel_aspect,
        settings_values=values,
        conflicts=conflicts,
    )
    return plan


def _processing_size(job: RenderJob, pass_name: str, entry: ModelEntry) -> int:
    """The job's working resolution for a pass, else the model's (each family means its own thing by it)."""
    size = getattr(job, f"{pass_name}_processing_size")
    return entry.processing_size if size is None else size


def _window_schedules(job: RenderJob, entries: dict[str, ModelEntry], *, shot_length: int) -> dict[str, WindowSchedule]:
    """Each pass's windows: the job's window and overlap, else its own model's (catalogue entry: the
    normal model keeps its training length and overlap when depth runs too), checked against what the
    network takes at once. Depth windows hold KEY_FRAMES key slots before their frames; normal windows
    are contiguous frames only."""
    schedules = {}
    for pass_name, entry in entries.items():
        window = entry.schedule.window if job.window is None else job.window
        overlap = entry.schedule.overlap if job.overlap is None else job.overlap
        keys = KEY_FRAMES if pass_name == "depth" else 0
        try:
            schedule = WindowSchedule(length=shot_length, size=window, overlap=overlap, keys=keys)
        except ValueError as exc:
            raise BadArgumentsError(f"--window {window} --overlap {overlap} ({entry.name}): {exc}") from None
        limit = entry.schedule.max_frames
        if limit is not None and schedule.size > limit:
            raise BadArgumentsError(f"--window {schedule.size}: {entry.name} takes at most {limit} frames at once")
        schedules[pass_name] = schedule
    return schedules


def temporal_weights_paths(job: RenderJob) -> dict[str, Path]:
    """Pass -> the trained temporal weights the job names for it."""
    named = {"depth": job.depth_temporal_weights, "normal": job.normal_temporal_weights}
    return {p: Path(value).expanduser() for p, value in named.items() if value}


def _temporal_weights_sha256(job: RenderJob) -> dict[str, str]:
    paths = temporal_weights_paths(job)
    for pass_name, path in paths.items():
        if pass_name not in job.passes:
            raise BadArgumentsError(f"--{pass_name}-temporal-weights {path}: the {pass_name} pass is not rendered (--passes)")
        if not path.is_file():
            raise MissingWeightsError(
                f"temporal weights file {path} does not exist (--{pass_name}-temporal-weights; "
                f"bufferany-train writes it, with its .json config beside it)"
            )
    return {p: sha256_of(path) for p, path in paths.items()}


def _check_writable(folder: Path) -> None:
    make_output_folder(folder)  # inside the server's allowed roots (atomic.confine_outputs), links refused
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputNotWritableError(f"output folder {folder} is not writable")


class _FrameCache:
    """Plate frames by number, taken from the feed when first asked for, dropped when no later window
    needs them."""

    def __init__(self, feed: PlateFeed):
        self.feed = feed
        self.frames: dict[int, FedFrame] = {}

    def get(self, numbers: list[int]) -> list[FedFrame]:
        for n in numbers:
            if n not in self.frames:
                self.frames[n] = self.feed.take(n)
        return [self.frames[n] for n in numbers]

    def keep_only(self, numbers: set[int]) -> None:
        for n in [n for n in self.frames if n not in numbers]:
            del self.frames[n]


def _predict(predictor: PassPredictor, frames: list[FedFrame], what: str) -> np.ndarray:
    """The pass on the plate's grid, float32 (`_widened` takes a frame of it to float64); the model
    sees the plate with square pixels (`square_pixels`)."""
    first = frames[0].frame
    try:
        with torch.inference_mode():
            plates = stack_on(frames, predictor.device)
            square = square_pixels.to_square(plates, first.info.pixel_aspect, clamp=True)
            normals = predictor.info.pass_name == "normal"
            out = square_pixels.to_plate(predictor.predict(square), *plates.shape[-2:], normals=normals)
    except torch.OutOfMemoryError as exc:
        h, w = np.shape(first.rgb)[:2]
        raise out_of_memory_error(
            exc,
            doing=f"predicting {predictor.info.pass_name} for {what} ({len(frames)} frames of {w}x{h})",
            device=predictor.device,
        ) from exc
    result = to_host(out)
    if not np.isfinite(result).all():
        raise NonFiniteError(f"the {predictor.info.pass_name} model produced NaN/Inf for {what}")
    return result


def _widened(values: np.ndarray) -> np.ndarray:
    """A float64 copy (exact) of one frame's prediction, or of its alignment samples: what alignment and
    cross-fading compute in, one frame at a time."""
    return values.astype(np.float64)


def _samples(image: np.ndarray) -> np.ndarray:
    """The pixels a least-squares fit or the reference range sees (every ALIGN_STRIDE-th in each axis),
    float64: taken before any arithmetic on a frame, so nothing is computed for the pixels left out."""
    return _widened(image[..., ::ALIGN_STRIDE, ::ALIGN_STRIDE])


def _plate_rgba(frame) -> np.ndarray:
    """The plate's own RGBA (not the model's sRGB view of it); alpha 1 where the plate has none."""
    if frame.path is None:  # movie frames: the decoded display-referred pixels
        rgb = np.asarray(frame.rgb, dtype=np.float32)
        return np.concatenate([rgb, np.ones(rgb.shape[:2] + (1,), np.float32)], axis=-1)
    has_alpha = "A" in frame.info.channels
    pixels = read_channels(frame.path, ("R", "G", "B", "A") if has_alpha else ("R", "G", "B"))
    if not has_alpha:
        pixels = np.concatenate([pixels, np.ones(pixels.shape[:2] + (1,), np.float32)], axis=-1)
    return pixels


_Previous = tuple[Window, np.ndarray, tuple[float, float]] | None  # window, raw depth (float32), its keys-only fit


@dataclass
class _Reference:
    """The farm depth schedule's shot-wide reference: the first window's mapping to 0..1 and its mapped
    values on the key frames later windows see (bounded: a few frames, not the window)."""

    scale: float
    shift: float
    values: dict[int, np.ndarray]  # position -> mapped values at the fit's samples (`_samples`)
    first: np.ndarray | None  # the first window's raw prediction (float32) until the loop takes it

    def take_first_window(self) -> np.ndarray:
        assert self.first is not None
        first, self.first = self.first, None
        return first


class _ShotRenderer:
    """The per-window loop of one job (state for one run only)."""

    def __init__(
        self, plan: RenderPlan, predictors: dict[str, PassPredictor], emit: Events, should_cancel, *, io_threads: bool
    ):
        self.plan = plan
        self.job = plan.job
        self.predictors = predictors
        self.emit = emit
        self.should_cancel = should_cancel or (lambda: False)
        self.schedule = plan.schedule
        self.schedules = {p: plan.schedules.get(p, plan.schedule) for p in predictors}
        self.ran: set[tuple[str, int]] = set()  # (pass, window index) already run
        self.shot = plan.shot
        self.io_threads = io_threads
        self.device = next(iter(predictors.values())).device
        self.writer = WriteBehind(
            depth=WRITE_BEHIND if io_threads else 0, preparers=WRITE_BEHIND, should_cancel=self.should_cancel
        )
        self.events = threading.Lock()  # frame_done comes from the writer's thread, progress from both
        position = {frame: p for p, frame in enumerate(plan.shot)}
        self.to_write = {position[f] for f in plan.to_render}
        self.wanted = set(plan.positions)
        self.stabilizer: ShotStabilizer | None = None
        self.sums: dict[int, dict[str, np.ndarray]] = {}  # position -> pass -> weighted sum
        self.written: list[int] = []
        self.work_done = 0.0  # fraction of the model windows run (the frames written count apart)
        self.reported = 0.0  # the last progress percent emitted
        if plan.stabilized_passes:
            self.flow_device = self.device
            self.flow = load_flow_estimator(
                "auto", models_dir=Path(self.job.models_dir) if self.job.models_dir else None, device=self.flow_device
            )
            self.stabilizer = ShotStabilizer(
                len(plan.shot), plan.stabilized_passes, self.flow, self.flow_device, pixel_aspect=plan.pixel_aspect
            )
        infos = {p: pr.info for p, pr in predictors.items()}
        self.provenance = Provenance(
            passes=tuple(self.job.passes),
            depth_convention=self.job.depth_convention,
            models={p: i.model_id for p, i in infos.items()},
            weights={p: i.weights_sha256 or (self.job.weights or "random") for p, i in infos.items()},
            untrained=any(i.untrained for i in infos.values()),
            temporal_weights=plan.temporal_sha256,
            frame_range=format_frame_spec(plan.requested),
            shot_range=f"{plan.shot[0]}-{plan.shot[-1]}",
            input_colorspace="",  # per frame: the plate's own default unless the job names one
            stabilized={p: (c.stabilize, c.reason) for p, c in plan.stabilize.items()},
            stabilize_mode=self.job.stabilize,
            source=plan.input_pattern,
            settings=plan.settings,
            settings_values=settings_json(plan.settings_values),
            precision=plan.precision,
        )

    def _check_cancel(self) -> None:
        self.writer.check()
        if self.should_cancel():
            self.writer.close(finish=False)  # what it wrote is final before the count below
            raise CancelledError(
                f"render cancelled after {len(self.written)} frame(s); finished frames are complete, re-run to resume"
            )

    def run(self) -> list[int]:
        official = self.job.schedule == "official" and "depth" in self.predictors
        farm_depth = "depth" in self.predictors and not official
        # every pass on its own windows, in the order their last frames arrive (depth first on a tie)
        steps = sorted(
            ((p, w) for p in ("depth", "normal") if p in self.predictors for w in self.plan.windows_of(p)),
            key=lambda step: (step[1].stop, step[0] != "depth", step[1].index),
        )
        # the official schedule reads as its windows unfold, so it is not read ahead
        order = [] if official else self._read_order(steps, farm_depth=farm_depth)
        feed = PlateFeed(
            sequence=self.plan.sequence,
            order=order,
            colorspace=self.job.input_colorspace,
            device=self.device,
            ahead=self._read_ahead() if self.io_threads else 0,
            workers=READ_THREADS,
        )
        self.cache = _FrameCache(feed)
        try:
            self._run_steps(steps, official=official, farm_depth=farm_depth)
            self.writer.close(finish=True)
            self.writer.check()
        except BaseException as exc:
            # frames finished before a failure are written, as a serial loop would have; a cancel drops them
            self.writer.close(finish=not isinstance(exc, (CancelledError, KeyboardInterrupt)))
            raise
        finally:
            feed.close()
        return self.written

    def _read_ahead(self) -> int:
        """The frames a window adds to the last (the most of any pass): what a window's burst of writes
        gives the reader time to read."""
        return max(s.span - s.overlap for s in self.schedules.values())

    def _read_order(self, steps: Sequence[tuple[str, Window]], *, farm_depth: bool) -> list[int]:
        """The frames in the order the steps first ask for them: the reference window, then each
        window's frames and its key frames."""
        positions = list(self.schedule.windows[0].positions) if farm_depth else []
        for name, window in steps:
            positions += [*window.positions, *(key_positions(window) if name == "depth" and farm_depth else ())]
        return [self.shot[p] for p in positions]

    def _run_steps(self, steps: Sequence[tuple[str, Window]], *, official: bool, farm_depth: bool) -> None:
        reference = self._reference(self.plan.windows_of("depth")) if farm_depth else None
        first_frame = {self.shot[0]} if "depth" in self.predictors else set()  # every later window's key slot 0
        self.official = self._official_depth() if official else None
        self.pending = sorted(self.wanted)  # positions still to finish, in shot order
        previous: _Previous = None
        for i, (pass_name, window) in enumerate(steps):
            self._check_cancel()
            frames = [self.shot[p] for p in window.positions]
            what = f"frames {frames[0]}-{frames[-1]}"
            plates = self.cache.get(frames)
            if pass_name == "depth" and reference is not None:
                previous = self._farm_depth(window, plates, what, reference, previous)
            elif pass_name == "normal":
                self._accumulate(window, "normal", _predict(self.predictors["normal"], plates, what))  # (T, 3, H, W)
            self.ran.add((pass_name, window.index))
            self.work_done = (i + 1) / (len(steps) + 1)  # the last share: writing (and stabilising) frames
            self._progress()
            self._write_ready()
            later = {
                self.shot[p]
                for name, w in steps[i + 1 :]
                for p in (*(key_positions(w) if name == "depth" and farm_depth else ()), *w.positions)
            }
            self.cache.keep_only(later | first_frame | {self.shot[p] for p in self.pending})

    def _farm_depth(self, window: Window, plates: list, what: str, reference: _Reference, previous: _Previous) -> _Previous:
        """One farm depth window: key frames where the official inference puts them (the shot's first frame,
        the frame 12 before the window's own), aligned by least squares to the reference on the key frames
        it knows and to the previous window (itself aligned by its key frames only) on the frames they share,
        so the fit depends on the shot and the settings alone, never on where a chunk starts."""
        keys = key_positions(window)
        raw_keys: np.ndarray  # (K, H, W) float32
        if window.index == 0:
            raw_keys, raw_depth = np.empty((0,)), reference.take_first_window()
            keys_fit = (reference.scale, reference.shift)
        else:
            key_plates = self.cache.get([self.shot[k] for k in keys])
            raw = _predict(self.predictors["depth"], key_plates + plates, what)[:, 0]  # (K+T, H, W)
            raw_keys, raw_depth = raw[: len(keys)], raw[len(keys) :]
        # the fits see every ALIGN_STRIDE-th pixel: sampled first, so the targets are computed there only
        source = [_samples(r) for k, r in zip(keys, raw_keys, strict=True) if k in reference.values]
        target = [reference.values[k] for k in keys if k in reference.values]
        if window.index > 0:
            keys_fit = fit_scale_shift(source, target)  # key 0 is always known
        if previous is not None and previous[0].index == window.index - 1:
            prev_window, prev_raw, (s0, t0) = previous
            for k, r in zip(keys, raw_keys, strict=True):
                if k not in reference.values and prev_window.start <= k < prev_window.stop:
                    source.append(_samples(r))
                    target.append(s0 * _samples(prev_raw[k - prev_window.start]) + t0)
            for p in range(window.start, prev_window.stop):
                source.append(_samples(raw_depth[p - window.start]))
                target.append(s0 * _samples(prev_raw[p - prev_window.start]) + t0)
        scale, shift = fit_scale_shift(source, target) if source else keys_fit

        def aligned(raw_frame: np.ndarray) -> np.ndarray:
            # widened as it is scaled (one pass, the same numbers); inverse depth below the shot's zero (what a
            # raw 0 maps to) is clamped, as the official inference clamps at 0
            depth = np.multiply(raw_frame, scale, dtype=np.float64)
            depth += shift
            return np.maximum(depth, reference.shift, out=depth)

        self._accumulate(window, "depth", raw_depth, aligned)
        return window, raw_depth, keys_fit

    def _reference(self, windows: list[Window]) -> _Reference:
        """The shot's first window, predicted on its own (contiguous frames, as the official inference's
        first window), mapped once so it spans 0 (far) to 1 (near): the reference of every farm window."""
        first = self.schedule.windows[0]
        frames = [self.shot[p] for p in first.positions]
        raw = _predict(self.predictors["depth"], self.cache.get(frames), f"reference frames {frames[0]}-{frames[-1]}")[:, 0]
        offset, scale = reference_range([_samples(r) for r in raw])
        needed = {k for w in windows for k in key_positions(w) if k < first.stop}
        values = {k: (_samples(raw[k]) - offset) * scale for k in sorted(needed | {0})}
        return _Reference(scale=scale, shift=-offset * scale, values=values, first=raw if windows[0].index == 0 else None)

    def _official_depth(self) -> Iterator[tuple[int, np.ndarray]]:
        """`--schedule official`: Video Depth Anything's own inference from the shot's first frame, mapped
        once (one scale and shift for the shot) so its first window spans 0 (far) to 1 (near)."""
        predictor = self.predictors["depth"]
        mapping: list[tuple[float, float]] = []

        def predict(positions: Sequence[int]) -> np.ndarray:
            frames = [self.shot[p] for p in positions]
            raw = _widened(_predict(predictor, self.cache.get(frames), f"frames {frames[0]}-{frames[-1]}")[:, 0])
            if not mapping:
                mapping.append(reference_range(list(raw), stride=ALIGN_STRIDE))
            return raw

        for position, depth in official_schedule.official_depth(len(self.shot), predict, until=max(self.wanted)):
            offset, scale = mapping[0]
            yield position, (depth - offset) * scale

    def _official_at(self, position: int) -> np.ndarray:
        assert self.official is not None
        for p, depth in self.official:  # in order; positions before `position` are not wanted
            if p == position:
                return depth
        raise RuntimeError(f"the official schedule ended before shot position {position}")

    def _accumulate(
        self, window: Window, pass_name: str, values: np.ndarray, transform: Callable[[np.ndarray], np.ndarray] | None = None
    ) -> None:
        """Add the window's weighted `values` (float32, one per window frame) to the cross-fade of the frames
        still wanted, a frame at a time, in float64: `transform` makes a frame's new float64 array from it
        (default: a copy)."""
        for p in window.positions:
            if p not in self.wanted:
                continue
            weight = self.schedules[pass_name].blend_weights(p)[window.index]
            term = (transform or _widened)(values[p - window.start])
            if weight != 1.0:  # a frame one window covers alone is that window's values, exactly
                term *= weight
            entry = self.sums.setdefault(p, {})
            if pass_name in entry:
                entry[pass_name] += term
            else:
                entry[pass_name] = term

    def _write_ready(self) -> None:
        """Finish the pending positions, in shot order, whose every pass has run its last window over them."""
        while self.pending and all(
            (name, schedule.final_after(self.pending[0])) in self.ran for name, schedule in self.schedules.items()
        ):
            p = self.pending.pop(0)
            self._check_cancel()
            number = self.shot[p]
            sums = self.sums.pop(p, {})
            plate = self.cache.get([number])[0].frame
            depth, normals = sums.get("depth"), sums.get("normal")
            if self.official is not None:
                depth = self._official_at(p)
            if self.stabilizer is not None:  # frames come out once the stabiliser windows covering them ran
                for finished in self.stabilizer.push(p, plate, depth, normals):
                    self._write(*finished)
            else:
                self._write(p, plate, depth, normals)

    def _write(self, p: int, plate, depth: np.ndarray | None, normals: np.ndarray | None) -> None:
        """Hand a finished frame to the writer (cross-faded normals are renormalised there, off the loop)."""
        if p not in self.to_write:
            return
        number = self.shot[p]
        path = self.plan.output.path(number)
        colorspace = self.job.input_colorspace or default_colorspace(plate.info)

        def prepare() -> PreparedFrame:
            return prepare_frame(
                provenance=replace(self.provenance, input_colorspace=colorspace),
                depth=depth,
                normals=normals,
                plate=_plate_rgba(plate) if self.job.include_plate else None,
            )

        def written() -> None:
            with self.events:
                self.written.append(number)
                self.emit({"type": "frame_done", "frame": number, "path": str(path)})
            self._progress()

        self.writer.submit(
            prepare=prepare, write=lambda frame: write_prepared(path, frame, like=plate.info), then=written
        )

    def _progress(self) -> None:
        """Progress: the larger of the model work done and the frames written, never going back, so a
        long first window shows movement before its first frame is written."""
        with self.events:
            total = len(self.plan.to_render)
            percent = 100.0 * max(self.work_done, len(self.written) / total)
            if percent > self.reported:
                self.reported = percent
                self.emit({"type": "progress", "percent": percent, "done": len(self.written), "total": total})


def _load_predictors(plan: RenderPlan, cache: PredictorCache) -> dict[str, PassPredictor]:
    job = plan.job
    models = {"depth": job.depth_model, "normal": job.normal_model}
    temporal = temporal_weights_paths(job)
    return {
        p: cache.get(
            cast(PassName, p),
            models[p],
            weights=job.weights,
            temporal_weights=None if p not in temporal else str(temporal[p]),
            models_dir=job.models_dir,
            device=job.device,
            # None (not asked for): the family's own size rules apply (depth: the official ones)
            processing_size=getattr(job, f"{p}_processing_size"),
            precision=plan.precision,
            downscale=job.downscale,
            # --schedule official: the normal pass runs the official preprocessing too (issue 25)
            preprocessing="official" if job.schedule == "official" else "bufferany",
        )
        for p in job.passes
    }


def _require_weights(plan: RenderPlan) -> None:
    """The official weights of every pass's model, found before any loads: one error names every
    missing file of the render (all passes) with the one `bufferany-models download` command."""
    job = plan.job
    if job.weights is not None:  # an explicit file, or random weights
        return
    entries = [get_model_entry(p, {"depth": job.depth_model, "normal": job.normal_model}[p]) for p in job.passes]
    needed = {e.name: e.weights for e in entries if e.weights is not None}
    if needed:
        require_weights(needed, models_dir=Path(job.models_dir) if job.models_dir else None)


def _validate_inputs(plan: RenderPlan) -> None:
    """Headers of every frame the render will read, before any model loads: a missing, unreadable
    or differently-sized frame fails now, naming itself."""
    if plan.sequence.is_movie:
        return
    needed = {plan.shot[p] for name in plan.job.passes for w in plan.windows_of(name) for p in w.positions}
    if "depth" in plan.job.passes:
        needed |= set(plan.key_frames)
    if "depth" in plan.job.passes and plan.job.schedule == "official":
        needed |= {plan.shot[p] for p in official_schedule.positions_read(len(plan.shot), until=max(plan.positions))}
    validate_sequence(plan.sequence, sorted(needed))


def run_render(
    job: RenderJob,
    *,
    on_event: Events | None = None,
    should_cancel: Callable[[], bool] | None = None,
    predictors: PredictorCache | None = None,
    io_threads: bool = True,
) -> RenderResult:
    """Render `job`. `io_threads`: plate frames are read ahead and output frames written behind the
    models on threads (`feed`); False does both in the render loop, with identical files."""
    emit = on_event or (lambda event: None)
    plan = plan_render(job)
    if plan.conflicts:
        raise outputs.conflict_error(plan.output, plan.conflicts, plan.settings_values)
    _check_writable(Path(plan.output_pattern).parent)
    outputs.remove_stale_temporaries(plan.output, plan.to_render)  # left by a killed render of these frames
    if plan.dropped:
        message = f"frames {format_frame_spec(plan.dropped)} lie outside the shot range {job.shot_range}: not rendered"
        emit({"type": "log", "level": "warning", "message": message})
    if plan.to_render and job.schedule == "official" and plan.positions[0] > 0:
        before = format_frame_spec(plan.shot[: plan.positions[0]])
        message = (
            f"--schedule official is sequential: frames {before} are computed again before frame "
            f"{plan.shot[plan.positions[0]]} (the result equals one run of the whole shot; --schedule farm splits a "
            f"shot cheaply)"
        )
        emit({"type": "log", "level": "warning", "message": message})
    if plan.to_render:
        _validate_inputs(plan)
        _require_weights(plan)
    loaded = _load_predictors(plan, predictors or PredictorCache()) if plan.to_render else {}
    untrained = any(p.info.untrained for p in loaded.values())
    stabilized = {p: choice.to_dict() for p, choice in plan.stabilize.items()}
    emit(
        {
            "type": "started",
            "frames": plan.to_render,
            "output": plan.output.pattern,
            "untrained": untrained,
            "stabilized": stabilized,
        }
    )
    for number in plan.finished:
        emit({"type": "frame_skipped", "frame": number, "path": str(plan.output.path(number))})
    result = RenderResult(
        frames_skipped=list(plan.finished), output_pattern=plan.output.pattern, untrained=untrained, stabilized=stabilized
    )
    if not plan.to_render:
        emit({"type": "progress", "percent": 100.0, "done": 0, "total": 0})
        return result
    renderer = _ShotRenderer(plan, loaded, emit, should_cancel, io_threads=io_threads)
    try:
        renderer.run()
    except (UnreadableImageError, NonFiniteError, MissingFramesError, OutputNotWritableError) as exc:
        if not renderer.written or isinstance(exc, DiskFullError):  # a full disk keeps its own exit code
            raise
        raise PartialFailureError(
            f"{exc} (frames {format_frame_spec(renderer.written)} were written and are complete; re-run to finish)"
        ) from exc
    result.frames_written = renderer.written
    return result

