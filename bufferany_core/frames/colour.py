"""Plate colour -> what the models expect (display-referred sRGB in [0, 1]).

Conversion goes through OpenColorIO inside OpenImageIO, with OpenImageIO's built-in config (the ACES
studio config: names such as "lin_rec709", "ACEScg", "srgb_tx", their aliases and full names).

Defaults, by what the file holds:
- float images (EXR, float TIFF, HDR): scene-linear Rec.709, `DEFAULT_INPUT_COLORSPACE`;
- integer images (8/16-bit PNG, JPEG, TIFF, DPX) and movie files: already sRGB, no transform.
`exposure` (stops) multiplies the pixels by 2**exposure in the input colour space, before the
transfer, to bring a dark or hot plate into range. After the transfer values are clipped to [0, 1]:
highlights above display white become white, negatives black (the models were trained on 8-bit
images and know nothing brighter).
"""

from __future__ import annotations

import functools

import numpy as np
import OpenImageIO as oiio

from bufferany_core.errors import BadArgumentsError
from bufferany_core.frames.exr import ImageInfo

DEFAULT_INPUT_COLORSPACE = "lin_rec709"  # scene-linear Rec.709 primaries ("Linear Rec.709 (sRGB)")
DISPLAY_COLORSPACE = "srgb_tx"  # sRGB encoded Rec.709 ("sRGB - Texture"): what the models see


@functools.lru_cache(maxsize=1)
def _config() -> oiio.ColorConfig:
    return oiio.ColorConfig()  # the built-in config unless $OCIO names another


def resolve_colorspace(name: str) -> str:
    """The config's canonical name for `name` (an alias or role); BadArgumentsError if unknown."""
    config = _config()
    resolved = config.resolve(name)
    if config.getColorSpaceIndex(resolved) < 0:
        known = ", ".join(["lin_rec709", "srgb_tx", "ACEScg", "ACES2065-1", "lin_p3d65", "raw"])
        raise BadArgumentsError(
            f"unknown input colour space {name!r}; known names include {known} "
            f"(all: {', '.join(config.getColorSpaceNames())})"
        )
    return resolved


def default_colorspace(info: ImageInfo) -> str:
    """The input colour space assumed for an image: scene-linear for float data, sRGB otherwise."""
    return DEFAULT_INPUT_COLORSPACE if info.is_float else DISPLAY_COLORSPACE


def to_model_srgb(rgb: np.ndarray, *, colorspace: str | None = None, exposure: float = 0.0) -> np.ndarray:
    """(H, W, 3) pixels in `colorspace` (default scene-linear Rec.709) -> (H, W, 3) float32 sRGB in [0, 1]."""
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) pixels, got shape {rgb.shape}")
    source = resolve_colorspace(colorspace or DEFAULT_INPUT_COLORSPACE)
    pixels = np.ascontiguousarray(rgb, dtype=np.float32)
    if exposure:
        pixels = pixels * np.float32(2.0**exposure)
    if source != resolve_colorspace(DISPLAY_COLORSPACE) and not _config().isData(source):
        buffer = oiio.ImageBuf(pixels)
        converted = None
        if oiio.ImageBufAlgo.colorconvert(buffer, buffer, source, DISPLAY_COLORSPACE):
            converted = buffer.get_pixels(oiio.FLOAT)  # (H, W, 3), a new array
        if converted is None:
            raise BadArgumentsError(f"cannot convert from colour space {colorspace!r}: {buffer.geterror()}")
        return np.clip(converted, 0.0, 1.0, out=converted)
    return np.clip(pixels, 0.0, 1.0)
