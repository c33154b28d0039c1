"""Normal convention conversions: exact answers on known vectors and rotations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from bufferany_core.conventions import NORMAL_AXES
from bufferany_core.models.normal import MODEL_AXES
from bufferany_core.normal_space import (
    OPENCV_AXES,
    OPENGL_AXES,
    axes_matrix,
    camera_to_world,
    convert_axes,
    directx_to_opengl,
    opengl_to_directx,
    world_to_camera,
)

FACING_RIGHT = [1.0, 0.0, 0.0]  # project convention: a wall seen on the left of the frame
FLOOR = [0.0, 1.0, 0.0]
FACING_CAMERA = [0.0, 0.0, 1.0]


def test_project_convention_is_opengl_camera_space():
    assert NORMAL_AXES == OPENGL_AXES
    np.testing.assert_array_equal(axes_matrix(NORMAL_AXES), np.eye(3))


@pytest.mark.parametrize(
    ("source", "vector", "expected"),
    [
        (OPENCV_AXES, FACING_CAMERA, [0.0, 0.0, -1.0]),  # OpenCV z looks away from the camera
        (OPENCV_AXES, FLOOR, [0.0, -1.0, 0.0]),
        (MODEL_AXES, FACING_RIGHT, [-1.0, 0.0, 0.0]),  # Marigold-E2E-FT: x points left
        (MODEL_AXES, FLOOR, FLOOR),
        (MODEL_AXES, FACING_CAMERA, FACING_CAMERA),
    ],
)
def test_convert_from_project_to_other_conventions(source, vector, expected):
    # `vector` is in the project's convention; converting it to `source` gives `expected`,
    # and converting back returns it.
    there = convert_axes(np.array(vector), NORMAL_AXES, source, axis=-1)
    np.testing.assert_array_equal(there, expected)
    np.testing.assert_array_equal(convert_axes(there, source, NORMAL_AXES, axis=-1), vector)


def test_permuted_axes():
    # Blender-world-like "z up": stored (x, y, z) = (right, towards camera, up)
    out = convert_axes(np.array([0.2, 0.3, 0.9]), "x-right y-towards-camera z-up", NORMAL_AXES, axis=-1)
    np.testing.assert_allclose(out, [0.2, 0.9, 0.3])


def test_torch_tensors_keep_layout_dtype_and_device():
    normals = torch.zeros(2, 3, 4, 5, dtype=torch.float64)
    normals[:, 0] = 1.0
    out = convert_axes(normals, NORMAL_AXES, MODEL_AXES)  # channel axis -3 by default
    assert out.shape == normals.shape and out.dtype == torch.float64 and isinstance(out, torch.Tensor)
    assert torch.equal(out[:, 0], -torch.ones(2, 4, 5)) and torch.equal(out[:, 1:], torch.zeros(2, 2, 4, 5))


def test_opengl_directx_flip_green_only_and_are_inverse():
    image = np.random.default_rng(0).normal(size=(4, 6, 3)).astype(np.float32)
    dx = opengl_to_directx(image, axis=-1)
    np.testing.assert_array_equal(dx[..., 1], -image[..., 1])
    np.testing.assert_array_equal(dx[..., [0, 2]], image[..., [0, 2]])
    np.testing.assert_array_equal(directx_to_opengl(dx, axis=-1), image)
    assert dx.dtype == np.float32


def test_camera_to_world_with_known_rotation():
    # Camera yawed 90 degrees to the left about world +y: it looks along world -x, its right is world -z.
    c, s = math.cos(math.pi / 2), math.sin(math.pi / 2)
    rotation = np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])
    normals = np.array([FACING_RIGHT, FLOOR, FACING_CAMERA])  # (3 normals, 3 components)
    world = camera_to_world(normals, rotation, axis=-1)
    np.testing.assert_allclose(world, [[0, 0, -1], [0, 1, 0], [1, 0, 0]], atol=1e-12)
    np.testing.assert_allclose(world_to_camera(world, rotation, axis=-1), normals, atol=1e-12)


def test_camera_to_world_on_image_tensor():
    rotation = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])  # roll 90 degrees
    normals = torch.zeros(1, 3, 2, 2)
    normals[:, 0] = 1.0
    world = camera_to_world(normals, rotation)
    assert torch.equal(world[:, 1], torch.ones(1, 2, 2)) and world[:, [0, 2]].abs().max() == 0


@pytest.mark.parametrize(
    ("rotation", "message"),
    [
        (np.eye(4), "3x3"),
        (np.diag([2.0, 2.0, 2.0]), "proper rotation"),
        (np.diag([1.0, 1.0, -1.0]), "proper rotation"),  # a mirror
    ],
)
def test_bad_rotation_is_refused(rotation, message):
    with pytest.raises(ValueError, match=message):
        camera_to_world(np.zeros((3,)), rotation, axis=-1)


@pytest.mark.parametrize(
    "axes",
    [
        "x-right y-up",
        "x-right y-right z-towards-camera",
        "y-up x-right z-towards-camera",
        "x-rightward y-up z-up",
    ],
)
def test_bad_axes_are_refused(axes):
    with pytest.raises(ValueError, match="normal axes"):
        axes_matrix(axes)


def test_wrong_component_count_is_refused():
    with pytest.raises(ValueError, match="3 components"):
        convert_axes(np.zeros((4, 4)), NORMAL_AXES, MODEL_AXES, axis=-1)
