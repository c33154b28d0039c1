"""The stabiliser in a render: which passes it runs on (`--stabilize auto|on|off`), and running it
over a shot so that farm chunks write exactly what one run writes.

Which passes (`decide`): `on` every pass, `off` none, `auto` each pass whose model has no trained
temporal layers (an image prior, a Buffer Anytime model without its `--*-temporal-weights`); passes
of trained video models (Video Depth Anything, trained temporal weights) are left as they come. The
decision depends on the catalogue entry and the job only (not on the weights' values), so a dry run,
the service and the header all state the same one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bufferany_core.flow.anamorphic import square_frame_pairs
from bufferany_core.flow.backends import FlowEstimator
from bufferany_core.flow.masks import DEFAULT_CYCLE_TOLERANCE
from bufferany_core.jobs import RenderJob
from bufferany_core.models.catalog import ModelEntry
from bufferany_core.pipeline.windows import Window, WindowSchedule
from bufferany_core.stabilize.trajectory import (
    PairCorrespondence,
    WindowSettings,
    far_from_edges,
    stabilize_window,
)


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
# Stabiliser windows: fixed shot-relative boundaries (a pure function of the shot's length), each window
# stabilised on its own (`stabilize.trajectory.stabilize_window`: per-frame scale and shift, then the
# long-range trajectory filter), overlaps cross-faded. A frame's result depends on the frames of the
# windows covering it and the settings only, so a farm chunk that computes those windows (the plan
# extends its positions to them) writes the numbers one run of the shot writes. Each adjacent pair's
# flows are computed once and kept by position while a window still to run needs them.
STABILIZE_WINDOW = 24  # frames per stabiliser window (40 lost contrast: the chained per-frame scale wanders further)
STABILIZE_OVERLAP = 8  # frames shared by consecutive stabiliser windows (cross-faded)


def stabilizer_schedule(length: int) -> WindowSchedule:
    """The stabiliser's windows over a shot of `length` frames (evenly spread starts, linear cross-fades)."""
    return WindowSchedule(length=length, size=STABILIZE_WINDOW, overlap=STABILIZE_OVERLAP, keys=0)


def stabilizer_positions(length: int, wanted: list[int]) -> list[int]:
    """`wanted` shot positions plus every position of the stabiliser windows covering them."""
    schedule = stabilizer_schedule(length)
    extended = set(wanted)
    for p in wanted:
        for window in schedule.covering(p):
            extended.update(window.positions)
    return sorted(extended)


@dataclass
class _Frame:
    plate: Any  # the plate frame (kept for writing: its info, its RGBA)
    rgb: np.ndarray  # (H, W, 3) sRGB [0, 1], what the flow sees
    depth: np.ndarray | None  # (H, W)
    normals: np.ndarray | None  # (3, H, W)
    sums: dict[str, np.ndarray] = field(default_factory=dict)  # stabilised pass -> weighted sum over windows


class ShotStabilizer:
    """Frames go in in shot order (`push`), stabilised frames come out once every stabiliser window
    covering them has run. Memory: the frames of about one window and their pairs' flows; cost per
    frame: one flow pair, and about window / (window - overlap) runs of the window filter."""

    def __init__(
        self,
        length: int,
        passes: list[str],
        estimator: FlowEstimator,
        device: torch.device,
        *,
        settings: WindowSettings | None = None,
        pixel_aspect: float = 1.0,
        cycle_tolerance: float = DEFAULT_CYCLE_TOLERANCE,
    ):
        self.schedule = stabilizer_schedule(length)
        self.pixel_aspect = pixel_aspect  # the plate's: the flow sees it desqueezed to square pixels
        self.passes = list(passes)
        self.estimator = estimator
        self.device = device
        self.settings = settings or WindowSettings()
        self.cycle_tolerance = cycle_tolerance
        self.frames: dict[int, _Frame] = {}
        self.pairs: dict[int, PairCorrespondence] = {}  # p -> frames p and p+1, computed once
        self.keep: dict[int, np.ndarray | None] = {}  # p -> frame p's normal-edge band (no depth given)
        self.pushed: set[int] = set()
        self.ran: set[int] = set()  # window indices already stabilised

    def push(
        self, position: int, plate: Any, depth: np.ndarray | None, normals: np.ndarray | None
    ) -> list[tuple[int, Any, np.ndarray | None, np.ndarray | None]]:
        """Add the next final frame; returns the frames (position, plate, depth, normals) now finished."""
        self.frames[position] = _Frame(plate, np.asarray(plate.rgb, np.float32), depth, normals)
        self.pushed.add(position)
        done = []
        for window in self.schedule.covering(position):
            if window.index not in self.ran and all(p in self.pushed for p in window.positions):
                self._run(window)
                self.ran.add(window.index)
        for p in sorted(self.frames):
            covering = self.schedule.covering(p)
            if all(w.index in self.ran for w in covering):
                done.append(self._finish(p))
            elif not any(w.index not in self.ran and self._can_run(w, position) for w in covering):
                del self.frames[p]  # context only: no window still to run needs it, and it is never finished
        for cache in (self.pairs, self.keep):
            for p in [p for p in cache if p not in self.frames]:
                del cache[p]
        return done

    def _can_run(self, window: Window, latest: int) -> bool:
        return all(p in self.pushed or p > latest for p in window.positions)

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

    def _run(self, window: Window) -> None:
        positions = list(window.positions)
        frames = [self.frames[p] for p in positions]
        want_depth = "depth" in self.passes and frames[0].depth is not None
        want_normals = "normal" in self.passes and frames[0].normals is not None
        out: dict[str, list[np.ndarray]] = {}
        if len(frames) > 1:
            pairs = [self._pair(p) for p in positions[:-1]]
            depth, normals = stabilize_window(
                [f.depth.astype(np.float32) for f in frames] if want_depth else None,  # type: ignore[union-attr]
                [f.normals.transpose(1, 2, 0).astype(np.float32) for f in frames] if want_normals else None,  # type: ignore[union-attr]
                pairs,
                self.settings,
            )
            if depth is not None:
                out["depth"] = [d.astype(np.float64) for d in depth]
            if normals is not None:
                out["normal"] = [n.transpose(2, 0, 1).astype(np.float64) for n in normals]
        else:
            if want_depth:
                out["depth"] = [f.depth.astype(np.float64) for f in frames]  # type: ignore[union-attr]
            if want_normals:
                out["normal"] = [f.normals.astype(np.float64) for f in frames]  # type: ignore[union-attr]
        for offset, p in enumerate(window.positions):
            weight = self.schedule.blend_weights(p)[window.index]
            sums = self.frames[p].sums
            for name, values in out.items():
                term = weight * values[offset]
                sums[name] = term if name not in sums else sums[name] + term

    def _finish(self, position: int) -> tuple[int, Any, np.ndarray | None, np.ndarray | None]:
        frame = self.frames.pop(position)
        depth = frame.sums.get("depth", frame.depth)
        normals = frame.sums.get("normal")
        if normals is not None:
            normals = normals / np.maximum(np.linalg.norm(normals, axis=0, keepdims=True), 1e-12)
        else:
            normals = frame.normals
        return position, frame.plate, depth, normals
