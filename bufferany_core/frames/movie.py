"""Movie files (mp4, mov, avi, mkv) through OpenCV.

Frames are numbered from 1, as Nuke's Read node numbers a movie. Pixels come back as RGB float32 in
[0, 1]: movie files are display-referred (Rec.709 video, treated as sRGB), so no colour transform.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from bufferany_core.errors import FrameRangeError, InputNotFoundError, UnreadableImageError
from bufferany_core.frames.exr import ImageInfo

MOVIE_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".m4v", ".webm")


def is_movie_path(path: str | Path) -> bool:
    return Path(path).suffix.lower() in MOVIE_EXTENSIONS


class MovieReader:
    """Random access to the frames of one movie file. Use as a context manager."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise InputNotFoundError(f"movie file {self.path} does not exist")
        self._capture = cv2.VideoCapture(str(self.path))
        if not self._capture.isOpened():
            raise UnreadableImageError(f"cannot open movie file {self.path} (unsupported or corrupt)")
        self.frame_count = int(self._capture.get(cv2.CAP_PROP_FRAME_COUNT))
        self.width = int(self._capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self._capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.fps = float(self._capture.get(cv2.CAP_PROP_FPS))
        if self.frame_count < 1 or self.width < 1 or self.height < 1:
            self.close()
            raise UnreadableImageError(f"movie file {self.path} has no readable video frames")
        self._next = 1  # frame number the capture decodes next; seeking costs more than reading on

    @property
    def info(self) -> ImageInfo:
        """The frames' geometry (square pixels, no overscan) and frame rate, as an EXR header keeps it."""
        if self.fps <= 0:
            return ImageInfo.for_size(self.width, self.height)
        rate = Fraction(self.fps).limit_denominator(1001)  # 23.976... -> 24000/1001
        return ImageInfo.for_size(
            self.width,
            self.height,
            metadata={"FramesPerSecond": (rate.numerator, rate.denominator)},
            metadata_types={"FramesPerSecond": "rational"},
        )

    def read(self, frame: int) -> np.ndarray:
        """Frame `frame` (1..frame_count) as (H, W, 3) float32 RGB in [0, 1]."""
        codes = self.read_codes(frame)
        return np.multiply(codes, np.float32(1.0 / np.iinfo(codes.dtype).max), dtype=np.float32)

    def read_codes(self, frame: int) -> np.ndarray:
        """Frame `frame` (1..frame_count) as (H, W, 3) RGB code values as decoded (uint8, or uint16
        for deep formats)."""
        if not 1 <= frame <= self.frame_count:
            raise FrameRangeError(f"frame {frame} is outside movie {self.path} (frames 1-{self.frame_count})")
        if frame != self._next:
            self._capture.set(cv2.CAP_PROP_POS_FRAMES, frame - 1)
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            self._next = -1  # position unknown after a failed decode: seek next time
            raise UnreadableImageError(f"cannot decode frame {frame} of movie file {self.path}")
        self._next = frame + 1
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._capture.release()

    def __enter__(self) -> MovieReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
