"""Plate frames read ahead of the models and output frames written behind them, each on a thread.

A render alternates reading plate frames (decode, NaN check, colour conversion), the models, and
writing output frames (depth range, compression, fsync). Reading and writing spend their time in
OpenImageIO, OpenColorIO and numpy, which release the GIL, so on their own threads they run while
the models do. Both queues are bounded, so memory stays flat in the shot's length.

What a thread raises reaches the render loop as the same exception object, where a serial loop
would have met it: a frame's read failure when the loop takes that frame (every frame before it in
the order arrives first), a write failure at the next hand-in or check. Cancelling drops the writes
not started; the one in hand finishes (writes are atomic: a file is whole or absent), so finished
frames are exactly the files on disk.

On CUDA each frame is uploaded once, through one pinned staging buffer, as it is read: windows
overlap and both passes read the same frames, and every use after that is a copy on the device.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from bufferany_core.atomic import confine_outputs, output_roots
from bufferany_core.frames import Frame, FrameSequence, read_frames

_POLL_S = 0.05  # how often a thread blocked on a full queue looks whether it was closed


@dataclass
class FedFrame:
    frame: Frame
    on_device: torch.Tensor | None  # (3, H, W) float32 on the CUDA device, None on the CPU


@dataclass
class _Failure:
    error: BaseException


class PlateFeed:
    """Frames of `sequence` in `order` (the order the render first needs them), read on a thread at
    most `ahead` frames before the render takes them. `take(n)` returns frame n: from the thread when n
    is still to come in the order, else read on the caller's thread (`ahead=0`: always)."""

    def __init__(
        self,
        *,
        sequence: FrameSequence,
        order: Sequence[int],
        colorspace: str | None,
        device: torch.device,
        ahead: int,
    ) -> None:
        if ahead < 0:
            raise ValueError(f"ahead must be >= 0, got {ahead}")
        self.sequence = sequence
        self.colorspace = colorspace
        self._uploader = _Uploader(device) if device.type == "cuda" else None
        self._to_come: set[int] = set(order) if ahead else set()
        self._early: dict[int, FedFrame] = {}  # arrived while the render asked for a later frame
        self._queue: queue.Queue[FedFrame | _Failure] = queue.Queue(maxsize=max(ahead, 1))
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        if self._to_come:
            unique = list(dict.fromkeys(order))
            self._thread = threading.Thread(target=self._run, args=(unique,), name="plate-feed", daemon=True)
            self._thread.start()

    def take(self, number: int) -> FedFrame:
        if number in self._early:
            return self._early.pop(number)
        if number not in self._to_come:
            return self._load(next(read_frames(self.sequence, [number], colorspace=self.colorspace)))
        while True:
            item = self._queue.get()
            if isinstance(item, _Failure):
                self._to_come.clear()
                raise item.error
            self._to_come.discard(item.frame.number)
            if item.frame.number == number:
                return item
            self._early[item.frame.number] = item

    def close(self) -> None:
        """Stop the thread (it finishes the frame in hand) and drop what it read ahead."""
        self._closed.set()
        if self._thread is not None:
            self._thread.join()
        self._early.clear()
        self._to_come.clear()

    def _run(self, order: list[int]) -> None:
        frames = read_frames(self.sequence, order, colorspace=self.colorspace)
        try:
            for frame in frames:
                if not self._put(self._load(frame)):
                    return
        except BaseException as exc:  # delivered to the render loop, which raises it
            self._put(_Failure(exc))
        finally:
            frames.close()

    def _put(self, item: FedFrame | _Failure) -> bool:
        while not self._closed.is_set():
            with contextlib.suppress(queue.Full):
                self._queue.put(item, timeout=_POLL_S)
                return True
        return False

    def _load(self, frame: Frame) -> FedFrame:
        return FedFrame(frame, None if self._uploader is None else self._uploader.upload(frame.rgb))


class _Uploader:
    """Host frames to the device through one pinned buffer, on a stream of its own (the models' stream
    keeps running); the upload is complete when `upload` returns, so the buffer is free again."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.stream = torch.cuda.Stream(device)
        self.staging: torch.Tensor | None = None

    def upload(self, rgb: np.ndarray) -> torch.Tensor:
        planar = torch.from_numpy(np.asarray(rgb, dtype=np.float32)).permute(2, 0, 1)  # (3, H, W) view
        if self.staging is None or self.staging.shape != planar.shape:
            self.staging = torch.empty(planar.shape, dtype=torch.float32, pin_memory=True)
        self.staging.copy_(planar)
        with torch.cuda.stream(self.stream):
            on_device = self.staging.to(self.device, non_blocking=True)
        self.stream.synchronize()
        return on_device


def stack_on(frames: Sequence[FedFrame], device: torch.device) -> torch.Tensor:
    """(T, 3, H, W) float32 on `device`: the uploaded frames stacked there, else the host frames copied
    once into the planar layout."""
    if all(f.on_device is not None for f in frames):
        current = torch.cuda.current_stream(device)
        for f in frames:
            assert f.on_device is not None
            f.on_device.record_stream(current)  # uploaded on the feed's stream, read on this one
        return torch.stack([f.on_device for f in frames])  # type: ignore[misc]
    first = np.shape(frames[0].frame.rgb)
    out = torch.empty((len(frames), 3, first[0], first[1]), dtype=torch.float32)
    for slot, f in zip(out, frames, strict=True):
        slot.copy_(torch.from_numpy(np.asarray(f.frame.rgb, dtype=np.float32)).permute(2, 0, 1))
    return out.to(device)


class WriteBehind:
    """Output frames written on a thread in the order handed in, at most `depth` waiting (`depth=0`:
    written by `submit` itself). Each write runs inside the caller's output confinement
    (`atomic.confine_outputs`, per thread) and, once whole, calls its `then`."""

    def __init__(self, *, depth: int, should_cancel: Callable[[], bool]) -> None:
        if depth < 0:
            raise ValueError(f"depth must be >= 0, got {depth}")
        self.should_cancel = should_cancel
        self._roots = output_roots()
        self._failure: BaseException | None = None
        self._abandon = threading.Event()
        self._queue: queue.Queue[tuple[Callable[[], None], Callable[[], None]] | None] = queue.Queue(maxsize=max(depth, 1))
        self._thread: threading.Thread | None = None
        self._closed = False
        if depth:
            self._thread = threading.Thread(target=self._run, name="frame-writer", daemon=True)
            self._thread.start()

    def submit(self, write: Callable[[], None], then: Callable[[], None]) -> None:
        self.check()
        if self._thread is None:
            write()
            then()
            return
        self._queue.put((write, then))

    def check(self) -> None:
        """Raise the error of a write that failed (nothing after it was written)."""
        if self._failure is not None:
            raise self._failure

    def close(self, *, finish: bool) -> None:
        """Wait for the thread: `finish` writes what waits, else it is dropped (the write in hand
        completes). Closing again only waits."""
        if not finish:
            self._abandon.set()
        if self._thread is None:
            return
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        confined = confine_outputs(self._roots) if self._roots is not None else contextlib.nullcontext()
        with confined:
            while (item := self._queue.get()) is not None:
                if self._failure is not None or self._abandon.is_set() or self.should_cancel():
                    continue  # dropped: a failed or cancelled render writes nothing more
                write, then = item
                try:
                    write()
                    then()
                except BaseException as exc:  # raised in the render loop by `check`
                    self._failure = exc
