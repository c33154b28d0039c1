"""Plate frames read ahead of the models and output frames written behind them, on threads.

A render alternates reading plate frames (decode, NaN check, colour conversion), the models, and
writing output frames (depth range, compression, fsync). Reading and writing spend their time in
OpenImageIO, OpenColorIO and numpy, which release the GIL, so on their own threads they run while
the models do; frames are read a few at once, and written one at a time, in order. Both queues
are bounded, so memory stays flat in the shot's length.

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
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from bufferany_core.atomic import confine_outputs, output_roots
from bufferany_core.frames import Frame, FrameSequence, read_frames


@dataclass
class FedFrame:
    frame: Frame
    on_device: torch.Tensor | None  # (3, H, W) float32 on the CUDA device, None on the CPU


class PlateFeed:
    """Frames of `sequence` in `order` (the order the render first needs them), read on `workers`
    threads at most `ahead` frames before the render takes them (a movie decodes in order, on one).
    `take(n)` returns frame n: read ahead when n is still to come in the order, else read on the
    caller's thread (`ahead=0`: always)."""

    def __init__(
        self,
        *,
        sequence: FrameSequence,
        order: Sequence[int],
        colorspace: str | None,
        device: torch.device,
        ahead: int,
        workers: int,
    ) -> None:
        if ahead < 0 or workers < 1:
            raise ValueError(f"need ahead >= 0 and workers >= 1, got ahead={ahead}, workers={workers}")
        self.sequence = sequence
        self.colorspace = colorspace
        self.ahead = ahead
        self._uploader = _Uploader(device) if device.type == "cuda" else None
        self._order = deque(dict.fromkeys(order)) if ahead else deque()
        self._to_come = set(self._order)
        self._pending: dict[int, Future[FedFrame]] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._movie: Iterator[Frame] | None = None
        if self._order:
            if sequence.is_movie:  # one decoder, in order: each task takes the next frame
                self._movie = read_frames(sequence, list(self._order), colorspace=colorspace)
                workers = 1
            self._pool = ThreadPoolExecutor(min(workers, ahead), thread_name_prefix="plate-feed")
            self._fill()

    def take(self, number: int) -> FedFrame:
        while number in self._to_come and number not in self._pending:  # asked before its turn
            self._submit_next()
        future = self._pending.pop(number, None)
        if future is None:
            return self._load(next(read_frames(self.sequence, [number], colorspace=self.colorspace)))
        try:
            frame = future.result()
        except BaseException:
            self.close()  # nothing after a failed frame is read
            raise
        self._fill()
        return frame

    def close(self) -> None:
        """Stop reading (frames in hand finish) and drop what was read ahead."""
        self._order.clear()
        self._to_come.clear()
        for future in self._pending.values():
            future.cancel()
        self._pending.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._movie is not None:
            self._movie.close()  # type: ignore[attr-defined]

    def _fill(self) -> None:
        while self._order and len(self._pending) < self.ahead:
            self._submit_next()

    def _submit_next(self) -> None:
        assert self._pool is not None
        number = self._order.popleft()
        self._to_come.discard(number)
        self._pending[number] = self._pool.submit(self._read, number)

    def _read(self, number: int) -> FedFrame:
        if self._movie is not None:
            return self._load(next(self._movie))
        return self._load(next(read_frames(self.sequence, [number], colorspace=self.colorspace)))

    def _load(self, frame: Frame) -> FedFrame:
        # The models take planes (3, H, W): the reading thread lays the pixels out so, and the frame keeps
        # them as an (H, W, 3) view, so the render loop stacks windows with plain copies.
        planar = np.ascontiguousarray(np.moveaxis(np.asarray(frame.rgb, dtype=np.float32), -1, 0))
        frame = replace(frame, rgb=planar.transpose(1, 2, 0))
        return FedFrame(frame, None if self._uploader is None else self._uploader.upload(planar))


class _Uploader:
    """Host frames to the device through a pinned buffer and a stream per reading thread (the models'
    stream keeps running); the upload is complete when `upload` returns, so the buffer is free again."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.local = threading.local()

    def upload(self, planes: np.ndarray) -> torch.Tensor:
        planar = torch.from_numpy(planes)  # (3, H, W)
        staging = getattr(self.local, "staging", None)
        if staging is None or staging.shape != planar.shape:
            staging = self.local.staging = torch.empty(planar.shape, dtype=torch.float32, pin_memory=True)
            self.local.stream = torch.cuda.Stream(self.device)
        staging.copy_(planar)
        with torch.cuda.stream(self.local.stream):
            on_device = staging.to(self.device, non_blocking=True)
        self.local.stream.synchronize()
        return on_device


def stack_on(frames: Sequence[FedFrame], device: torch.device) -> torch.Tensor:
    """(T, 3, H, W) float32 on `device`: the uploaded frames stacked there, else the host frames (planes
    under an (H, W, 3) view, `PlateFeed._load`) copied once."""
    if all(f.on_device is not None for f in frames):
        current = torch.cuda.current_stream(device)
        for f in frames:
            assert f.on_device is not None
            f.on_device.record_stream(current)  # uploaded on the feed's stream, read on this one
        return torch.stack([f.on_device for f in frames])  # type: ignore[misc]
    first = np.shape(frames[0].frame.rgb)
    out = torch.empty((len(frames), 3, first[0], first[1]), dtype=torch.float32)
    for slot, f in zip(out, frames, strict=True):
        slot.copy_(torch.from_numpy(np.asarray(f.frame.rgb).transpose(2, 0, 1)))
    return out.to(device)


def to_host(values: torch.Tensor) -> np.ndarray:
    """A prediction as float32 on the host (what the predictors compute in; fp16 widens exactly). The
    render widens it to float64 a frame at a time where it aligns and cross-fades, never a whole
    window at once: a window of float64 normals at 3840x2160 would be 6 GB. From CUDA: one copy
    into pinned memory."""
    values = values.detach().to(torch.float32)
    if values.device.type != "cuda":
        return values.numpy()
    host = torch.empty(values.shape, dtype=torch.float32, pin_memory=True)
    host.copy_(values)
    return host.numpy()


class WriteBehind:
    """Output frames prepared by `preparers` threads at once (arithmetic only, no files) and written by
    one thread in the order handed in, at most `depth` waiting (`depth=0`: prepared and written by
    `submit` itself). Each write runs inside the caller's output confinement (`atomic.confine_outputs`,
    per thread) and, once whole, calls its `then`."""

    def __init__(self, *, depth: int, preparers: int, should_cancel: Callable[[], bool]) -> None:
        if depth < 0 or preparers < 1:
            raise ValueError(f"need depth >= 0 and preparers >= 1, got depth={depth}, preparers={preparers}")
        self.should_cancel = should_cancel
        self._roots = output_roots()
        self._failure: BaseException | None = None
        self._abandon = threading.Event()
        self._queue: queue.Queue[_Write | None] = queue.Queue(maxsize=max(depth, 1))
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        if depth:
            self._pool = ThreadPoolExecutor(preparers, thread_name_prefix="frame-prepare")
            self._thread = threading.Thread(target=self._run, name="frame-writer", daemon=True)
            self._thread.start()

    def submit(self, *, prepare: Callable[[], Any], write: Callable[[Any], None], then: Callable[[], None]) -> None:
        self.check()
        if self._pool is None:
            write(prepare())
            then()
            return
        self._queue.put(_Write(self._pool.submit(prepare), write, then))

    def check(self) -> None:
        """Raise the error of a frame that failed to be prepared or written (nothing after it was written)."""
        if self._failure is not None:
            raise self._failure

    def close(self, *, finish: bool) -> None:
        """Wait for the threads: `finish` writes what waits, else it is dropped (the write in hand
        completes). Closing again only waits."""
        if not finish:
            self._abandon.set()
        if self._thread is None or self._pool is None:
            return
        if not self._closed:
            self._closed = True
            self._queue.put(None)
        self._thread.join()
        self._pool.shutdown(wait=True)

    def _run(self) -> None:
        confined = confine_outputs(self._roots) if self._roots is not None else contextlib.nullcontext()
        with confined:
            while (item := self._queue.get()) is not None:
                if self._failure is not None or self._abandon.is_set() or self.should_cancel():
                    item.prepared.cancel()
                    continue  # dropped: a failed or cancelled render writes nothing more
                try:
                    item.write(item.prepared.result())
                    item.then()
                except BaseException as exc:  # raised in the render loop by `check`
                    self._failure = exc


@dataclass
class _Write:
    prepared: Future[Any]
    write: Callable[[Any], None]
    then: Callable[[], None]
