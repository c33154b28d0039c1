"""Frames in and out: sequences and frame specs, images and EXR through OpenImageIO, colour, movies.

Heavy (numpy, OpenImageIO, OpenCV): hosts must not import this package.
"""

from bufferany_core.frames.colour import (
    DEFAULT_INPUT_COLORSPACE,
    DISPLAY_COLORSPACE,
    ColourTransform,
    colour_transform,
    default_colorspace,
    resolve_colorspace,
    to_model_srgb,
)
from bufferany_core.frames.exr import (
    ImageInfo,
    colour_channels,
    read_channels,
    read_info,
    read_rgb,
    write_exr,
    write_exr_parts,
)
from bufferany_core.frames.framespec import format_frame_spec, parse_frame_spec
from bufferany_core.frames.movie import MOVIE_EXTENSIONS, MovieReader, is_movie_path
from bufferany_core.frames.reader import Frame, read_frames, validate_sequence
from bufferany_core.frames.sequence import FrameSequence, output_sequence_for

__all__ = [
    "DEFAULT_INPUT_COLORSPACE",
    "DISPLAY_COLORSPACE",
    "MOVIE_EXTENSIONS",
    "ColourTransform",
    "Frame",
    "FrameSequence",
    "ImageInfo",
    "MovieReader",
    "colour_channels",
    "colour_transform",
    "default_colorspace",
    "format_frame_spec",
    "is_movie_path",
    "output_sequence_for",
    "parse_frame_spec",
    "read_channels",
    "read_frames",
    "read_info",
    "read_rgb",
    "resolve_colorspace",
    "to_model_srgb",
    "validate_sequence",
    "write_exr",
    "write_exr_parts",
]
