"""Conversions between surface-normal conventions: axis conventions, OpenGL/DirectX normal maps,
camera space and world space.

Axis conventions are written as in `conventions.NORMAL_AXES`: three words, one per stored component
x, y, z, each naming the direction that component points to as seen from the camera, e.g.
"x-right y-up z-towards-camera" (the project's, OpenGL camera space) or
"x-right y-down z-away-from-camera" (OpenCV camera space). Normals are outward (they point away
from the surface, into the half space the camera sees it from).

Works on numpy arrays and torch tensors alike (the result has the input's type, dtype and device);
`axis` is the position of the 3 components: -3 for (..., 3, H, W) tensors, -1 for (H, W, 3) images.
numpy is imported here; torch is never imported (tensors bring their own methods).
"""

from __future__ import annotations

import numpy as np

from bufferany_core.conventions import NORMAL_AXES

# Unit directions in a reference frame (right, up, towards camera) = the project's frame.
_DIRECTIONS = {
    "right": (1.0, 0.0, 0.0),
    "left": (-1.0, 0.0, 0.0),
    "up": (0.0, 1.0, 0.0),
    "down": (0.0, -1.0, 0.0),
    "towards-camera": (0.0, 0.0, 1.0),
    "away-from-camera": (0.0, 0.0, -1.0),
}

OPENGL_AXES = "x-right y-up z-towards-camera"
OPENCV_AXES = "x-right y-down z-away-from-camera"


def axes_matrix(axes: str) -> np.ndarray:
    """3x3 matrix whose column i is stored component i's direction in the project's frame.

    Raises ValueError unless `axes` names x, y and z in that order with three perpendicular directions.
    """
    words = axes.split()
    if len(words) != 3:
        raise ValueError(f"normal axes {axes!r}: expected three words like {NORMAL_AXES!r}")
    columns = []
    for letter, word in zip("xyz", words, strict=True):
        prefix, _, direction = word.partition("-")
        if prefix != letter or direction not in _DIRECTIONS:
            raise ValueError(
                f"normal axes {axes!r}: {word!r} must be '{letter}-' followed by one of {', '.join(_DIRECTIONS)}"
            )
        columns.append(_DIRECTIONS[direction])
    matrix = np.array(columns, dtype=np.float64).T
    if abs(abs(np.linalg.det(matrix)) - 1.0) > 1e-9:
        raise ValueError(f"normal axes {axes!r}: two components point along the same line")
    return matrix


def convert_axes(normals, source: str, target: str = NORMAL_AXES, *, axis: int = -3):
    """Re-express normals stored in the `source` axis convention in the `target` one."""
    matrix = axes_matrix(target).T @ axes_matrix(source)  # source components -> target components
    return _apply(normals, matrix, axis)


def opengl_to_directx(normals, *, axis: int = -3):
    """Flip the green (y) component: OpenGL normal maps are y-up, DirectX ones y-down. Its own inverse."""
    return _apply(normals, np.diag([1.0, -1.0, 1.0]), axis)


directx_to_opengl = opengl_to_directx


def camera_to_world(normals, rotation, *, axis: int = -3):
    """Camera-space normals in the project's convention -> world space.

    `rotation` is the camera-to-world rotation (3x3, columns = the camera's right, up and backward
    axes in world coordinates, as in a Nuke/Blender/OpenGL camera matrix; the upper-left block of a
    camera-to-world transform without scale). Normals of a rigid motion rotate like directions.
    """
    return _apply(normals, _check_rotation(rotation), axis)


def world_to_camera(normals, rotation, *, axis: int = -3):
    """World-space normals -> camera space in the project's convention; `rotation` as in `camera_to_world`."""
    return _apply(normals, _check_rotation(rotation).T, axis)


def _check_rotation(rotation) -> np.ndarray:
    matrix = np.asarray(rotation.tolist() if hasattr(rotation, "tolist") else rotation, dtype=np.float64)
    if matrix.shape != (3, 3):
        raise ValueError(f"camera rotation must be 3x3, got shape {matrix.shape}")
    if not np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-4) or np.linalg.det(matrix) < 0:
        raise ValueError(
            "camera rotation must be a proper rotation (orthonormal, determinant +1): "
            "remove scale and shear from the camera matrix first"
        )
    return matrix


def _apply(normals, matrix: np.ndarray, axis: int):
    """out_i = sum_j matrix[i, j] * normals_j along `axis`, keeping the input's type, dtype and device."""
    if normals.shape[axis] != 3:
        raise ValueError(
            f"normals must have 3 components along axis {axis}, got shape {tuple(normals.shape)}"
        )
    if isinstance(normals, np.ndarray):
        moved = np.moveaxis(normals, axis, -1)
        out = moved @ matrix.T.astype(normals.dtype if normals.dtype.kind == "f" else np.float64)
        return np.moveaxis(out, -1, axis)
    # torch.Tensor (duck-typed so that this module never imports torch)
    weights = normals.new_tensor(matrix.T.tolist())
    return (normals.movedim(axis, -1) @ weights).movedim(-1, axis)
