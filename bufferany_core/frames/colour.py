"""Plate colour -> what the models expect (display-referred sRGB in [0, 1]).

Conversion goes through OpenColorIO with the config OpenImageIO uses: the one $OCIO names, else
OCIO's built-in default (the ACES studio config: names such as "lin_rec709", "ACEScg", "srgb_tx",
their aliases and full names). Names are read as OpenImageIO reads them (it also knows "linear").

Defaults, by what the file holds:
- float images (EXR, float TIFF, HDR): scene-linear Rec.709, `DEFAULT_INPUT_COLORSPACE`;
- integer images (8/16-bit PNG, JPEG, TIFF, DPX) and movie files: already sRGB, no transform.
`exposure` (stops) multiplies the pixels by 2**exposure in the input colour space, before the
transfer, to bring a dark or hot plate into range. After the transfer values are clipped to [0, 1]:
highlights above display white become white, negatives black (the models were trained on 8-bit
images and know nothing brighter).

A `ColourTransform` holds one OCIO processor for a shot. Half-float and 8/16-bit pixels take few
distinct values, so when the transform treats R, G and B separately (OCIO says whether it does) every
possible value is converted once, and a frame costs a table look-up that gives exactly what OCIO
gives pixel by pixel. Other pixels are converted in place, in float32, in bands across threads.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import OpenImageIO as oiio
import PyOpenColorIO as ocio

from bufferany_core.errors import BadArgumentsError
from bufferany_core.frames.exr import ImageInfo

DEFAULT_INPUT_COLORSPACE = "lin_rec709"  # scene-linear Rec.709 primaries ("Linear Rec.709 (sRGB)")
DISPLAY_COLORSPACE = "srgb_tx"  # sRGB encoded Rec.709 ("sRGB - Texture"): what the models see
_BAND = 3 * 2**18  # values per task for the threads: enough work to hide the hand-off
_CHUNK = 3 * 2**14  # values per table look-up: the widened indices stay in the CPU's cache


@functools.lru_cache(maxsize=1)
def _names() -> oiio.ColorConfig:
    return oiio.ColorConfig()  # OpenImageIO's reading of names: aliases, roles and its own ("linear")


@functools.lru_cache(maxsize=1)
def _config() -> ocio.Config:
    location = os.environ.get("OCIO")
    try:  # OpenImageIO's rule: $OCIO when set, else the built-in config
        return ocio.Config.CreateFromEnv() if location else ocio.Config.CreateFromFile("ocio://default")
    except ocio.Exception as error:
        raise BadArgumentsError(f"cannot load the OpenColorIO config $OCIO={location}: {error}") from None


def resolve_colorspace(name: str) -> str:
    """The config's canonical name for `name` (an alias or role); BadArgumentsError if unknown."""
    names = _names()
    resolved = names.resolve(name)
    if names.getColorSpaceIndex(resolved) < 0:
        known = ", ".join(["lin_rec709", "srgb_tx", "ACEScg", "ACES2065-1", "lin_p3d65", "raw"])
        raise BadArgumentsError(
            f"unknown input colour space {name!r}; known names include {known} "
            f"(all: {', '.join(names.getColorSpaceNames())})"
        )
    return resolved


def default_colorspace(info: ImageInfo) -> str:
    """The input colour space assumed for an image: scene-linear for float data, sRGB otherwise."""
    return DEFAULT_INPUT_COLORSPACE if info.is_float else DISPLAY_COLORSPACE


class ColourTransform:
    """Pixels in one colour space -> model sRGB in [0, 1], with OCIO's processor built once.

    Thread-safe: the look-up tables are built on first use and never change afterwards.
    """

    def __init__(self, *, colorspace: str | None = None, exposure: float = 0.0):
        self.colorspace = resolve_colorspace(colorspace or DEFAULT_INPUT_COLORSPACE)
        self._gain = np.float32(2.0**exposure)
        self._processor: ocio.CPUProcessor | None = None
        self._separable = True
        if self.colorspace != resolve_colorspace(DISPLAY_COLORSPACE) and not _names().isData(self.colorspace):
            try:
                processor = _config().getProcessor(self.colorspace, DISPLAY_COLORSPACE)
            except ocio.Exception as error:
                raise BadArgumentsError(f"cannot convert from colour space {colorspace!r}: {error}") from None
            self._processor = processor.getDefaultCPUProcessor()
            # what the CPU processor applies is the optimised chain, whose crosstalk may differ
            optimised = processor.getOptimizedProcessor(ocio.OPTIMIZATION_DEFAULT)
            self._separable = not optimised.hasChannelCrosstalk()
        self._tables: dict[np.dtype, np.ndarray] = {}

    def convert(self, pixels: np.ndarray) -> np.ndarray:
        """(H, W, 3) pixels -> (H, W, 3) float32 sRGB in [0, 1].

        float32 pixels are converted in place and returned; float16 and uint8/uint16 pixels (code
        values, 0..max = 0..1) give a new array. Results equal converting float32 copies with OCIO.
        """
        if pixels.ndim != 3 or pixels.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) pixels, got shape {pixels.shape}")
        if pixels.dtype == np.uint8 and self._separable:  # OpenCV's look-up: a few times numpy's
            table = self._table(pixels.dtype)
            return cv2.LUT(np.ascontiguousarray(pixels), np.ascontiguousarray(table.T[None]))
        if pixels.dtype in (np.float16, np.uint16) and self._separable:
            return self._look_up(self._table(pixels.dtype), pixels.view(np.uint16))
        if pixels.dtype != np.float32 or not pixels.flags.c_contiguous:
            pixels = np.ascontiguousarray(self._to_float(pixels))
        self._convert_in_place(pixels)
        return pixels

    def _to_float(self, pixels: np.ndarray) -> np.ndarray:
        if np.issubdtype(pixels.dtype, np.integer):
            return np.multiply(pixels, np.float32(1.0 / np.iinfo(pixels.dtype).max), dtype=np.float32)
        return pixels.astype(np.float32)

    def _convert_in_place(self, pixels: np.ndarray) -> None:
        """float32 C-contiguous (..., 3) pixels: exposure, OCIO, clip; in place, OCIO in threads."""
        if self._gain != 1.0:
            np.multiply(pixels, self._gain, out=pixels)
        processor = self._processor
        if processor is not None:
            flat = pixels.reshape(-1)
            _in_bands(flat.size, lambda start, stop: processor.applyRGB(flat[start:stop]))
        np.clip(pixels, 0.0, 1.0, out=pixels)

    def _look_up(self, table: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """`table`'s entries for (H, W, 3) `codes`."""
        flat = np.ascontiguousarray(codes).reshape(-1)
        out = np.empty(codes.shape, np.float32)
        flat_out = out.reshape(-1)
        # value v of channel c sits at c * N + v
        offsets = np.tile(np.arange(3, dtype=np.intp) * table.shape[1], _CHUNK // 3)

        def band(start: int, stop: int) -> None:
            # in chunks: numpy would widen a whole band's indices to int64 first, costing more
            # memory traffic than the look-up itself
            index = np.empty(_CHUNK, np.intp)
            for first in range(start, stop, _CHUNK):
                last = min(first + _CHUNK, stop)
                np.add(flat[first:last], offsets[: last - first], out=index[: last - first])
                np.take(table, index[: last - first], out=flat_out[first:last], mode="clip")

        _in_bands(flat.size, band)
        return out

    def _table(self, dtype: np.dtype) -> np.ndarray:
        """The result for every value of `dtype` in R, G and B: (3, N)."""
        table = self._tables.get(dtype)
        if table is None:
            codes = np.arange(2 ** (8 * dtype.itemsize), dtype=f"u{dtype.itemsize}")
            values = self._to_float(codes.view(dtype))
            every = np.repeat(values[:, None], 3, axis=1)  # (N, 3): each value as R, G and B
            with np.errstate(invalid="ignore"):  # the table holds the NaNs too
                self._convert_in_place(every)
            table = np.ascontiguousarray(every.T)  # (3, N): R's entries, then G's, then B's
            self._tables[dtype] = table
        return table


@functools.lru_cache(maxsize=16)
def colour_transform(colorspace: str | None = None, exposure: float = 0.0) -> ColourTransform:
    """The shared `ColourTransform` for a colour space and exposure: one processor per process, not
    per frame, however often a shot's frames are read."""
    return ColourTransform(colorspace=colorspace, exposure=exposure)


def _in_bands(size: int, work: Callable[[int, int], None]) -> None:
    """`work(start, stop)` over 0..size in bands of whole pixels, on a thread per core (OCIO and
    numpy's look-ups let go of the GIL)."""
    if size <= _BAND:
        work(0, size)
        return
    pool = _pool(os.getpid())
    list(pool.map(lambda start: work(start, min(start + _BAND, size)), range(0, size, _BAND)))


@functools.cache
def _pool(pid: int) -> ThreadPoolExecutor:
    # one per process: a forked child (a DataLoader worker) inherits the parent's pool but not its
    # threads, and work given to that pool would never run
    return ThreadPoolExecutor(max_workers=os.cpu_count() or 1, thread_name_prefix="bufferany-colour")


def to_model_srgb(rgb: np.ndarray, *, colorspace: str | None = None, exposure: float = 0.0) -> np.ndarray:
    """(H, W, 3) pixels in `colorspace` (default scene-linear Rec.709) -> (H, W, 3) float32 sRGB in
    [0, 1], a new array (`rgb` is left as it was)."""
    transform = colour_transform(colorspace, exposure)
    if rgb.dtype == np.float32:
        rgb = rgb.copy()
    return transform.convert(rgb)
