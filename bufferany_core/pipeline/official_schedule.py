"""Video Depth Anything's own shot inference (`infer_video_depth` in its `video_depth.py`), exactly,
as a stream: `--schedule official`.

The schedule (`../shared/reference/README.md` describes it step by step):
- windows of 32 model slots advancing by 22 frames; the shot is padded at its end by repeating its
  last frame, so every window is full (a 1-frame shot runs one window of 32 copies);
- from the second window on, the first 10 slots hold the previous window's slots
  [0, 12, 24, ..., 31]: the shot's first frame, the frame 10 before the window's start, then the
  8 frames just before its new ones (so slots 2..31 are contiguous frames);
- every prediction is resized to the frame size (bilinear, aligned corners: the predictor does it);
- each later window gets one least-squares scale and shift from its slots 0-1 against the running
  reference (the first window's slots 0 and 12, then the aligned slot 12 of each window); aligned
  values below 0 become 0;
- the 8 frames before the new ones are cross-faded linearly (weights 0, 1/7, ..., 1 towards the new
  window) and only slots 10..31 are appended.

It is sequential: window k's scale depends on every window before it. A farm chunk under this
schedule therefore computes the shot from its first frame (it still writes what one run writes,
because a window depends only on the frames up to its own and on the shot's length).

Pure numpy on predictions; the model call is the `predict` callable (positions -> (32, H, W) raw
inverse depth at the frame size), so this module neither reads frames nor runs a model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from bufferany_core.errors import BadArgumentsError
from bufferany_core.jobs import RenderJob
from bufferany_core.models.catalog import ModelEntry
from bufferany_core.scale_shift import fit_scale_shift

WINDOW = 32  # INFER_LEN: the model's temporal length
OVERLAP = 10  # slots a window takes over from the previous one
STEP = WINDOW - OVERLAP  # 22 new frames per window
KEY_SLOTS = (0, 12, 24, 25, 26, 27, 28, 29, 30, 31)  # previous-window slots copied into slots 0..9
CROSSFADE = 8  # INTERP_LEN
ALIGN_SLOTS = OVERLAP - CROSSFADE  # slots 0 and 1 carry the scale and shift

Predict = Callable[[Sequence[int]], np.ndarray]


def window_count(length: int) -> int:
    """Windows the official inference runs for a shot of `length` frames."""
    if length < 1:
        raise ValueError(f"a shot needs at least one frame, got {length}")
    return math.ceil(length / STEP)


def window_positions(index: int, length: int) -> tuple[int, ...]:
    """Shot positions in window `index`'s 32 slots (positions past the end repeat the last frame)."""
    if not 0 <= index < window_count(length):
        raise ValueError(f"window {index} outside the {window_count(length)} windows of a {length}-frame shot")
    start = index * STEP
    padded = list(range(WINDOW)) if index == 0 else [0, start - OVERLAP, *range(start + ALIGN_SLOTS, start + WINDOW)]
    return tuple(min(p, length - 1) for p in padded)


def final_after(position: int, length: int) -> int:
    """Index of the window after which `position`'s value no longer changes."""
    last = window_count(length) - 1
    # A window appends up to its slot 31; its last CROSSFADE frames change with the next window.
    return min(last, max(0, math.ceil((position - (WINDOW - CROSSFADE) + 1) / STEP)))


class OfficialAlignment:
    """The alignment half of the schedule: feed it each window's 32 raw predictions in order, get
    back the frames that are final, in order (bounded memory: 8 pending frames and 2 references)."""

    def __init__(self, length: int):
        self.length = length
        self.windows = window_count(length)
        self.next_index = 0
        self.pending: list[np.ndarray] = []  # aligned frames not yet final (the cross-fade tail)
        self.pending_start = 0  # position of pending[0]
        self.reference: list[np.ndarray] = []

    def add(self, raw: np.ndarray) -> list[tuple[int, np.ndarray]]:
        index = self.next_index
        if index >= self.windows:
            raise ValueError(f"all {self.windows} windows of the shot have been added")
        if len(raw) != WINDOW:
            raise ValueError(f"a window has {WINDOW} predictions, got {len(raw)}")
        self.next_index += 1
        if index == 0:
            self.pending = list(raw)
            self.pending_start = 0
            self.reference = [raw[k] for k in KEY_SLOTS[:ALIGN_SLOTS]]
        else:
            scale, shift = fit_scale_shift(list(raw[:ALIGN_SLOTS]), self.reference)

            def aligned(slot: int) -> np.ndarray:
                return np.maximum(raw[slot] * scale + shift, 0.0)

            tail = self.pending[-CROSSFADE:]
            weights = [i / (CROSSFADE - 1) for i in range(CROSSFADE)]
            self.pending[-CROSSFADE:] = [
                pre * (1.0 - w) + aligned(ALIGN_SLOTS + i) * w for i, (pre, w) in enumerate(zip(tail, weights, strict=True))
            ]
            self.pending += [aligned(slot) for slot in range(OVERLAP, WINDOW)]
            self.reference = [self.reference[0], *(aligned(k) for k in KEY_SLOTS[1:ALIGN_SLOTS])]
        keep = 0 if index == self.windows - 1 else CROSSFADE
        done = self.pending[: len(self.pending) - keep]
        self.pending = self.pending[len(self.pending) - keep :]
        first = self.pending_start
        self.pending_start += len(done)
        return [(first + i, depth) for i, depth in enumerate(done) if first + i < self.length]


def official_depth(length: int, predict: Predict, *, until: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(position, aligned inverse depth) for positions 0, 1, ... of a `length`-frame shot, in order,
    running windows only as far as position `until` (default: the whole shot) needs."""
    last = length - 1 if until is None else min(until, length - 1)
    alignment = OfficialAlignment(length)
    for index in range(final_after(last, length) + 1):
        raw = np.asarray(predict(window_positions(index, length)))
        for position, depth in alignment.add(raw):
            if position > last:
                return
            yield position, depth


def positions_read(length: int, *, until: int | None = None) -> set[int]:
    """Shot positions the windows up to position `until` (default: the whole shot) read."""
    last = length - 1 if until is None else min(until, length - 1)
    return {p for index in range(final_after(last, length) + 1) for p in window_positions(index, length)}


def check_job(job: RenderJob, depth_entry: ModelEntry | None) -> None:
    """Refuse what `--schedule official` cannot honour (BadArgumentsError naming the option)."""
    if job.schedule != "official":
        return
    if depth_entry is None:
        return  # normals only: official means Marigold-E2E-FT's own preprocessing (models.normal.preprocess)
    if depth_entry.architecture != "video-depth-anything":
        raise BadArgumentsError(
            f"--schedule official reproduces Video Depth Anything's own video inference; {depth_entry.name} is not a "
            f"Video Depth Anything model (use --schedule farm)"
        )
    fixed = [f"--{name}" for name in ("window", "overlap") if getattr(job, name) is not None]
    if fixed:
        raise BadArgumentsError(
            f"--schedule official has its own windows ({WINDOW} frames advancing by {STEP}, key frames from the previous "
            f"window): leave out {', '.join(fixed)}"
        )
