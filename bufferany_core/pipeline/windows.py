"""Where the windows of a shot fall, which key frames each one sees, and how overlaps cross-fade.

Everything here is a pure function of the shot's frame list and the window settings, never of the
frames a particular process renders: a farm chunk derives the same windows, key frames and weights as
one run of the whole shot, which is what makes chunks agree.

Positions are indices into the shot's frame list (a shot may have gaps or a step); frame numbers are
only mapped at the edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Window:
    index: int
    start: int  # first position (index into the shot's frames)
    stop: int  # one past the last position

    @property
    def positions(self) -> range:
        return range(self.start, self.stop)


@dataclass(frozen=True)
class WindowSchedule:
    """Windows of `size` model slots: `keys` key frames (`key_positions`) then `size - keys`
    consecutive shot frames, consecutive windows sharing at least `overlap` frames."""

    length: int  # frames in the shot
    size: int
    overlap: int
    keys: int = 2

    def __post_init__(self) -> None:
        if self.length < 1:
            raise ValueError(f"a shot needs at least one frame, got length={self.length}")
        if self.keys < 0:
            raise ValueError(f"need keys >= 0, got keys={self.keys}")
        if self.size - self.keys < 2:
            raise ValueError(f"window size {self.size} leaves fewer than 2 frames after {self.keys} key frames")
        if not 0 <= self.overlap <= (self.size - self.keys) // 2:
            raise ValueError(
                f"overlap {self.overlap} must be between 0 and half the window's {self.size - self.keys} shot frames"
            )

    @property
    def span(self) -> int:
        """Shot frames per window."""
        return self.size - self.keys

    @cached_property
    def windows(self) -> tuple[Window, ...]:
        span = min(self.span, self.length)
        stride = span - self.overlap
        # Evenly spread starts: no short last window, every overlap at least `overlap`.
        count = 1 if self.length <= span else math.ceil((self.length - span) / stride) + 1
        starts = [0] if count == 1 else [round(i * (self.length - span) / (count - 1)) for i in range(count)]
        return tuple(Window(index=i, start=s, stop=s + span) for i, s in enumerate(starts))

    def covering(self, position: int) -> list[Window]:
        return [w for w in self.windows if w.start <= position < w.stop]

    def blend_weights(self, position: int) -> dict[int, float]:
        """Cross-fade weights (window index -> weight, summing to 1) of the windows covering `position`.

        Each window ramps linearly over `overlap + 1` steps at an edge it shares with a neighbour;
        in a two-window overlap of n frames the weights are (n - j) / (n + 1) and (j + 1) / (n + 1).
        """
        if not 0 <= position < self.length:
            raise ValueError(f"position {position} outside a shot of {self.length} frames")
        covering = self.covering(position)
        raw = {}
        for w in covering:
            ramp_in = (position - w.start + 1) / (self._shared(w, before=True) + 1)
            ramp_out = (w.stop - position) / (self._shared(w, before=False) + 1)
            raw[w.index] = min(1.0, ramp_in, ramp_out)
        total = sum(raw.values())
        return {i: v / total for i, v in raw.items()}

    def _shared(self, window: Window, *, before: bool) -> int:
        """Frames `window` shares with its neighbour before (or after) it; 0 at the shot's ends."""
        if before:
            return 0 if window.index == 0 else self.windows[window.index - 1].stop - window.start
        last = len(self.windows) - 1
        return 0 if window.index == last else window.stop - self.windows[window.index + 1].start

    def windows_for(self, positions: list[int] | range) -> list[Window]:
        """Windows to run to produce `positions`: every window covering one of them, plus the window
        before each (its prediction on the shared frames enters the next one's alignment)."""
        wanted = set(positions)
        covering = {w.index for w in self.windows if any(p in wanted for p in w.positions)}
        needed = covering | {i - 1 for i in covering if i > 0}
        return [self.windows[i] for i in sorted(needed)]

    def final_after(self, position: int) -> int:
        """Index of the last window covering `position`: once it has run, the frame can be written."""
        return max(w.index for w in self.covering(position))


KEY_GAP = 12  # Video Depth Anything's second key slot is the frame 12 before a window's contiguous frames


def key_positions(window: Window) -> tuple[int, ...]:
    """Key frames the farm depth schedule gives a window, where the official inference puts them: the
    shot's first frame and the frame KEY_GAP before the window's own (none for the first window, which
    is the shot's reference)."""
    return () if window.start == 0 else (0, max(0, window.start - KEY_GAP))
