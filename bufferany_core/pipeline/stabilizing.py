"""The stabiliser in a render: which passes it runs on (`--stabilize auto|on|off`), and running it
over a shot so that farm chunks write exactly what one run writes.

Which passes (`decide`): `on` every pass, `off` none, `auto` each pass whose model has no trained
temporal layers (an image prior, a Buffer Anytime model without its `--*-temporal-weights`); passes
of trained video models (Video Depth Anything, trained temporal weights) are left as they come. The
decision depends on the catalogue entry and the job only (not on the weights' values), so a dry run,
the service and the header all state the same one.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from bufferany_core.flow.anamorphic import square_frame_pairs
from bufferany_core.flow.backends import FlowEstimator
from bufferany_core.flow.masks import DEFAULT_CYCLE_TOLERANCE
from bufferany_core.jobs import RenderJob
from bufferany_core.models.catalog import ModelEntry
from bufferany_core.pipeline.align import renormalise
from bufferany_core.pipeline.windows import Window, WindowSchedule
from bufferany_core.stabilize.trajectory import (
    AlignSettings,
    PairCorrespondence,
    TrajectorySettings,
    align_depth_window,
    far_from_edges,
    filter_frame,
)
from bufferany_core.stabilize.working_size import enlarge, shrink, working_shape


@dataclass(frozen=True)
class StabilizeChoice:
    """Whether one pass goes through the stabiliser, and why (recorded in the header, printed by --dry-run)."""

    stabilize: bool
    reason: str

    def describe(self) -> str:
        return f"{'stabilised' if self.stabilize else 'not stabilised'} ({self.reason})"

    def to_dict(self) -> dict[str, object]:
        return {"stabilized": self.stabilize, "reason": self.reason}


def decide(job: RenderJob, entries: dict[str, ModelEntry]) -> dict[str, StabilizeChoice]:
    """Pass -> whether the stabiliser runs on it, for the job's passes (entries: the passes' models)."""
    choices = {}
    for pass_name, entry in entries.items():
        if job.stabilize == "on":
            choices[pass_name] = StabilizeChoice(True, "--stabilize on")
        elif job.stabilize == "off":
            choices[pass_name] = StabilizeChoice(False, "--stabilize off")
        elif getattr(job, f"{pass_name}_temporal_weights"):
            choices[pass_name] = StabilizeChoice(
                False, f"auto: {entry.name} runs with trained temporal weights (--{pass_name}-temporal-weights)"
            )
        elif entry.trained_temporal:
            choices[pass_name] = StabilizeChoice(False, f"auto: {entry.name} has trained temporal layers")
        elif entry.video:
            choices[pass_name] = StabilizeChoice(
                True, f"auto: {entry.name} has untrained temporal layers (no --{pass_name}-temporal-weights)"
            )
        else:
            choices[pass_name] = StabilizeChoice(True, f"auto: {entry.name} is an image model (no temporal layers)")
    return choices


# -- chunk-exact stabilisation over a shot ---------------------------------------------------------------
# Two stages, each a pure function of shot positions, so a farm chunk that computes the frames a frame
# depends on (the plan extends its positions to them) writes the numbers one run of the shot writes:
# 1. depth's per-frame scale and shift, solved in windows at fixed shot-relative boundaries
#    (`stabilize.trajectory.align_depth_window`), the aligned depth cross-faded over overlaps;
# 2. the trajectory filter (`stabilize.trajectory.filter_frame`) on each frame once, over the shot's
#    frames within `TrajectorySettings.reach` of it (a sliding support, not limited by the windows).
# Each adjacent pair's flows are computed once and kept by position while a frame still to filter or a
# window still to align needs them.
STABILIZE_WINDOW = 24  # frames per alignment window (40 lost contrast: the chained per-frame scale wanders further)
STABILIZE_OVERLAP = 8  # frames shared by consecutive alignment windows (cross-faded)
# Short side, px, the stabiliser works at (the models' default processing size): a larger plate's flows,
# alignment and trajectory filter run on shrunk copies and only the filter's correction is enlarged, so
# the cost per frame is bounded whatever the plate (`stabilize.working_size`).
STABILIZE_WORKING_SIZE = 518


# Bump when the stabiliser's numbers change for the same settings: renders record it, so frames
# stabilised by an earlier algorithm are rendered again rather than counted as finished.
STABILIZER_ALGORITHM = 6  # 6: trajectory support +-20 frames (5: frame scales held near the plain fit; 4: bounded working size; 3: short-trajectory confidence relative to the shot; 2: sliding filter; 1: windowed)


def stabilizer_settings() -> dict:
    """What a render records of the stabiliser (part of its settings fingerprint)."""
    return {
        "algorithm": STABILIZER_ALGORITHM,
        "windows": [STABILIZE_WINDOW, STABILIZE_OVERLAP],
        "working_size": STABILIZE_WORKING_SIZE,
        "trajectory": asdict(TrajectorySettings()),
    }


def stabilizer_schedule(length: int) -> WindowSchedule:
    """The depth alignment's windows over a shot of `length` frames (evenly spread starts, linear cross-fades)."""
    return WindowSchedule(length=length, size=STABILIZE_WINDOW, overlap=STABILIZE_OVERLAP, keys=0)


def support(length: int, position: int, radius: int) -> range:
    """Shot positions the trajectory filter of `position` reads."""
    return range(max(0, position - radius), min(length, position + radius + 1))


def stabilizer_positions(length: int, wanted: list[int], *, radius: int | None = None) -> list[int]:
    """`wanted` shot positions plus every position their stabilised values depend on: the frames within
    the filter's radius and the alignment windows covering those."""
    radius = TrajectorySettings().reach if radius is None else radius
    schedule = stabilizer_schedule(length)
    extended = set(wanted)
    for j in {j for p in wanted for j in support(length, p, radius)}:
        for window in schedule.covering(j):
            extended.update(window.positions)
    return sorted(extended)


@dataclass
class _Frame:
    plate: Any  # the plate frame (kept for writing: its info, its RGBA)
    rgb: np.ndarray  # (h, w, 3) sRGB [0, 1] at the working size, what the flow sees
    depth: np.ndarray | None  # (h, w)
    normals: np.ndarray | None  # (3, h, w), unit
    full: tuple[np.ndarray | None, np.ndarray | None] | None = None  # (depth, unit normals) float32 at the plate's size, when shrunk
    aligned: np.ndarray | None = None  # depth after the alignment windows (weighted sum while they run)
    aligned_full: np.ndarray | None = None  # the same per-frame scale and shift on the plate-size depth
    values: np.ndarray | None = None  # (C, h, w) float32: the stabilised passes' inputs to the filter


def _add_scaled(total: np.ndarray | None, depth: np.ndarray, scale: float, shift: float, weight: float) -> np.ndarray:
    """total + weight * (depth * scale + shift), in float64 (a window's share of a frame's aligned
    depth), with one plate-size temporary."""
    term = depth.astype(np.float64)
    term *= scale
    term += shift
    term *= weight
    if total is None:
        return term
    total += term
    return total


class ShotStabilizer:
    """Frames go in in shot order (`push`), stabilised frames come out once the frames within the
    filter's radius are aligned. Memory: about 2 x radius + one window of frames and their pairs' flows,
    whatever the shot's length; cost per frame: one flow pair, its share of the alignment windows
    (cheap: a few thousand correspondences per pair) and one trajectory filter, all at the working size:
    a plate whose short side exceeds `working_size` is shrunk to it, the depth's per-frame scale and
    shift are applied at the plate's size (they are exact there), and the filter's correction is
    enlarged and added to the plate-size passes. Plates at or below it are stabilised as they are."""

    def __init__(
        self,
        length: int,
        passes: list[str],
        estimator: FlowEstimator,
        device: torch.device,
        *,
        align: AlignSettings | None = None,
        trajectory: TrajectorySettings | None = None,
        pixel_aspect: float = 1.0,
        cycle_tolerance: float = DEFAULT_CYCLE_TOLERANCE,
        working_size: int = STABILIZE_WORKING_SIZE,
    ):
        working_shape(1, 1, working_size)  # refuses a size below one pixel before any frame comes
        self.working_size = working_size
        self.length = length
        self.schedule = stabilizer_schedule(length)
        self.pixel_aspect = pixel_aspect  # the plate's: the flow sees it desqueezed to square pixels
        self.passes = list(passes)
        self.estimator = estimator
        self.device = device
        self.align = align or AlignSettings()
        self.trajectory = trajectory or TrajectorySettings()
        self.cycle_tolerance = cycle_tolerance
        self.frames: dict[int, _Frame] = {}
        self.pairs: dict[int, PairCorrespondence] = {}  # p -> frames p and p+1, computed once
        self.keep: dict[int, np.ndarray | None] = {}  # p -> frame p's normal-edge band (no depth given)
        self.pushed: set[int] = set()
        self.aligned_windows: set[int] = set()
        self.finished: set[int] = set()
        self.depends: dict[int, range] = {}  # p -> positions frame p's result depends on
        self.covering: dict[int, list[Window]] = {}  # p -> alignment windows over it
        self.latest = -1

    def push(
        self, position: int, plate: Any, depth: np.ndarray | None, normals: np.ndarray | None
    ) -> list[tuple[int, Any, np.ndarray | None, np.ndarray | None]]:
        """Add the next final frame; returns the frames (position, plate, depth, normals) now finished.
        `normals` need not be unit (a render's cross-fade shortens them, a file rounds them): the
        filter gets them unit, so a render and `bufferany-stabilize` feed it alike."""
        if position <= self.latest:
            raise ValueError(f"frames must come in shot order: position {position} after {self.latest}")
        self.frames[position] = self._working_frame(plate, depth, normals)
        self.pushed.add(position)
        self.latest = position
        if self._aligns():
            for window in self.schedule.covering(position):
                if all(p in self.pushed for p in window.positions):
                    self._align(window)
        done = []
        for p in sorted(self.frames):
            if p not in self.finished and all(self._ready(j) for j in self._support(p)):
                done.append(self._finish(p))
        needed = {j for p in self.frames if p not in self.finished and self._possible(p) for j in self._needs(p)}
        for p in [p for p in self.frames if p not in needed]:
            del self.frames[p]
        self.finished &= set(self.frames)
        for cache in (self.pairs, self.keep, self.depends, self.covering):
            for p in [p for p in cache if p not in self.frames]:
                del cache[p]
        return done

    def _working_frame(self, plate: Any, depth: np.ndarray | None, normals: np.ndarray | None) -> _Frame:
        """The frame as the stabiliser sees it (normals made unit): shrunk to the working size when the
        plate is larger."""
        rgb = np.asarray(plate.rgb, np.float32)
        shape = working_shape(*rgb.shape[:2], self.working_size)
        if shape is None:
            return _Frame(plate, rgb, depth, None if normals is None else renormalise(normals, axis=0))
        # float32 at the plate's size (what the alignment reads and the writer stores): a frame waits here
        # until the frames within the filter's radius are in, so these copies are most of the memory
        depth = None if depth is None else np.asarray(depth, np.float32)
        unit = None if normals is None else renormalise(normals, axis=0, dtype=np.float32)
        small_depth = None if depth is None else shrink(depth, shape)
        small_normals = None
        if unit is not None:
            small_normals = renormalise(shrink(unit.transpose(1, 2, 0), shape), axis=2).transpose(2, 0, 1)
        return _Frame(plate, shrink(rgb, shape), small_depth, small_normals, full=(depth, unit))

    def _aligns(self) -> bool:
        return "depth" in self.passes and next(iter(self.frames.values())).depth is not None

    def _covering(self, j: int) -> list[Window]:
        if j not in self.covering:
            self.covering[j] = self.schedule.covering(j)
        return self.covering[j]

    def _support(self, p: int) -> range:
        return support(self.length, p, self.trajectory.reach)

    def _depends(self, p: int) -> range:
        """Positions frame p's result depends on (its support and, for depth, their alignment windows):
        a contiguous run, as windows and supports are."""
        if not self._aligns():
            return self._support(p)
        if p not in self.depends:
            extended = stabilizer_positions(self.length, [p], radius=self.trajectory.reach)
            self.depends[p] = range(extended[0], extended[-1] + 1)
        return self.depends[p]

    def _needs(self, p: int) -> set[int]:
        """Frames to keep for frame p: its support and the frames of alignment windows over it still to run."""
        needs = set(self._support(p))
        if self._aligns():
            for j in self._support(p):
                for window in self._covering(j):
                    if window.index not in self.aligned_windows:
                        needs.update(window.positions)
        return needs

    def _possible(self, p: int) -> bool:
        """Frame p can still be finished: nothing it depends on was skipped (frames come in order)."""
        depends = self._depends(p)
        return all(j in self.pushed for j in range(depends.start, min(depends.stop, self.latest + 1)))

    def _ready(self, j: int) -> bool:
        """Frame j's filter input is final: pushed and, for depth, every alignment window over it ran."""
        if j not in self.frames:
            return False
        return not self._aligns() or all(w.index in self.aligned_windows for w in self._covering(j))

    def _normal_keep(self, p: int) -> np.ndarray | None:
        """Frame p's edge band from its normals, when no depth is given (depth edges come with the pair)."""
        if p not in self.keep:
            frame = self.frames[p]
            normals = frame.normals.transpose(1, 2, 0) if frame.normals is not None else None
            self.keep[p] = far_from_edges(None, normals) if frame.depth is None else None
        return self.keep[p]

    def _pair(self, p: int) -> PairCorrespondence:
        """Frames p and p+1's flows and validity (cycle check, depth edges, on square pixels:
        flow.anamorphic), computed once per render."""
        if p not in self.pairs:
            a, b = self.frames[p], self.frames[p + 1]
            plate = torch.from_numpy(np.stack([a.rgb, b.rgb])).permute(0, 3, 1, 2).to(self.device)
            depth = None
            if a.depth is not None and b.depth is not None:
                depth = torch.from_numpy(np.stack([a.depth, b.depth]).astype(np.float32)[:, None]).to(self.device)
            pairs = square_frame_pairs(
                plate, self.estimator, pixel_aspect=self.pixel_aspect, depth=depth, tau=self.cycle_tolerance
            )
            valid_fw = pairs.valid_fw[0, 0].cpu().numpy()
            valid_bw = pairs.valid_bw[0, 0].cpu().numpy()
            keep_a, keep_b = self._normal_keep(p), self._normal_keep(p + 1)
            if keep_a is not None and keep_b is not None:
                valid_fw, valid_bw = valid_fw & keep_a, valid_bw & keep_b
            self.pairs[p] = PairCorrespondence(
                np.ascontiguousarray(pairs.flows_fw[0].permute(1, 2, 0).float().cpu().numpy()),
                np.ascontiguousarray(pairs.flows_bw[0].permute(1, 2, 0).float().cpu().numpy()),
                valid_fw,
                valid_bw,
            )
        return self.pairs[p]

    def _align(self, window: Window) -> None:
        if window.index in self.aligned_windows:
            return
        positions = list(window.positions)
        depth = [self.frames[p].depth.astype(np.float32) for p in positions]  # type: ignore[union-attr]
        scale, shift = [1.0] * len(positions), [0.0] * len(positions)
        if len(positions) > 1:
            scale, shift = align_depth_window(depth, [self._pair(p) for p in positions[:-1]], self.align)
        for p, d, a, b in zip(positions, depth, scale, shift, strict=True):
            frame = self.frames[p]
            weight = self.schedule.blend_weights(p)[window.index]
            frame.aligned = _add_scaled(frame.aligned, d, a, b, weight)
            if frame.full is not None:  # a per-frame scale and shift holds at any size: applied exactly
                frame.aligned_full = _add_scaled(frame.aligned_full, frame.full[0], a, b, weight)  # type: ignore[arg-type]
        self.aligned_windows.add(window.index)

    def _groups(self) -> list[tuple[slice, bool]]:
        frame = next(iter(self.frames.values()))
        groups = []
        if self._aligns():
            groups.append((slice(0, 1), False))
        if "normal" in self.passes and frame.normals is not None:
            first = len(groups)
            groups.append((slice(first, first + 3), True))
        return groups

    def _values(self, j: int) -> np.ndarray:
        """Frame j's filter input (C, H, W): aligned depth then normals, whichever are stabilised."""
        frame = self.frames[j]
        if frame.values is None:
            parts = []
            if self._aligns():
                parts.append(frame.aligned[None])  # type: ignore[index]
            if "normal" in self.passes and frame.normals is not None:
                parts.append(frame.normals)
            frame.values = np.ascontiguousarray(np.concatenate(parts, axis=0), dtype=np.float32)
        return frame.values

    def _finish(self, position: int) -> tuple[int, Any, np.ndarray | None, np.ndarray | None]:
        self.finished.add(position)
        frame = self.frames[position]
        groups = self._groups()
        depth, normals = frame.full if frame.full is not None else (frame.depth, frame.normals)
        if groups:
            window = self._support(position)
            values = {j: self._values(j) for j in window}
            pairs = {j: self._pair(j) for j in window[:-1]}
            out = filter_frame(values, pairs, self.length, position, groups, self.trajectory)
            if frame.full is not None:
                depth, normals = self._enlarged(frame, out - values[position])
                frame.full = frame.aligned_full = None  # its neighbours need only its working-size values
                return position, frame.plate, depth, normals
            if self._aligns():
                depth = out[0].astype(np.float64)
            if "normal" in self.passes and frame.normals is not None:
                normals = out[groups[-1][0]].astype(np.float64)
        return position, frame.plate, depth, normals

    def _enlarged(self, frame: _Frame, correction: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """A shrunk frame's plate-size passes: the aligned depth and the unit normals plus the filter's
        correction (working-size output minus its input, (C, h, w)) enlarged; normals renormalised."""
        depth, normals = frame.full  # type: ignore[misc]
        shape = frame.plate.rgb.shape[:2]
        correction = enlarge(np.ascontiguousarray(correction.transpose(1, 2, 0)), shape).reshape(*shape, -1)
        if self._aligns():
            depth = frame.aligned_full + correction[..., 0]
        if "normal" in self.passes and normals is not None:
            moved = normals + correction[..., self._groups()[-1][0]].transpose(2, 0, 1)
            normals = renormalise(moved, axis=0, dtype=np.float64)
        return depth, normals
