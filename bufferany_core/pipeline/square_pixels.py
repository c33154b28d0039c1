"""Square pixels for the models: an anamorphic plate is shown to the models (and to the stabiliser's
optical flow) desqueezed, and what comes back is resampled to the plate's own grid.

A plate with pixel aspect `a` (EXR `PixelAspectRatio`: a pixel is `a` times as wide as it is tall)
is a horizontally squeezed picture of the scene. The models were trained on square pixels, so they
see the plate stretched to square pixels (`square_shape`: the short pixel dimension stretched, no
detail lost), their processing size applies to that picture, and their output is resampled back to
the plate's data window (`to_plate`); the writer keeps the plate's geometry and pixel aspect.

The normals rule (why the vectors come back unchanged). Write plate pixel coordinates (u, v) and
square-view coordinates (u', v') = (a u, v): the map plate <- view is J = diag(1/a, 1). Anything
drawn in image units transforms with J: a displacement (optical flow) as dx = J dx', so flow x is
divided by a (`plate_pairs`); a normal *of the picture* (the gradient of a surface drawn in image
units, a covector) as n = J^-T n' = (a n'x, n'y, n'z) renormalised. But the normal pass is a
camera-space vector (`conventions`: x right, y up, z towards the camera), a property of the 3D
surface: the squeeze changes how the sensor samples the image (the focal length in x, fx = fy / a),
not camera space, so the normal a model predicts from the square view is already the camera-space
normal of the plate at that point, and only its position is resampled. Applying J^-T to it would
give the normal of the squeezed world (the scene scaled by 1/a in x), which is exactly the wrong
shape a model fed the squeezed plate sees (`tests/test_square_pixels.py` checks both on an
analytic plane). A consumer that wants normals in plate image units applies J^-T itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from bufferany_core.flow.anamorphic import is_square, square_frame_pairs, square_shape, to_square
from bufferany_core.frames import FrameSequence, read_info

__all__ = ["is_square", "plate_pixel_aspect", "square_frame_pairs", "square_shape", "to_plate", "to_square"]


def to_plate(values: torch.Tensor, height: int, width: int, *, normals: bool = False) -> torch.Tensor:
    """(T, C, h, w) square-view values -> the plate's (T, C, height, width): an area average where the view
    only shrinks back (the squeeze itself: a 2:1 plate's pixel is the mean of two view pixels), else
    bilinear. Normals are resampled as vectors and renormalised, never rescaled (module docstring)."""
    h, w = values.shape[-2:]
    if (h, w) == (height, width):
        return values
    if h >= height and w >= width:
        out = F.interpolate(values, size=(height, width), mode="area")
    else:
        out = F.interpolate(values, size=(height, width), mode="bilinear", align_corners=False, antialias=True)
    return F.normalize(out, dim=1, eps=1e-12) if normals else out


def plate_pixel_aspect(sequence: FrameSequence, frame: int) -> float:
    """The plate's pixel aspect (its header's, read from `frame`; movies: 1.0)."""
    if sequence.is_movie:
        return 1.0
    path = sequence.path(frame)
    return read_info(path).pixel_aspect if path.is_file() else 1.0
