"""Load a synthetic ground-truth shot (written by scripts/blender/render_synthetic_shot.py).

Layout of a shot folder:
    plate/shot.####.exr   R, G, B, A scene-linear (the input a user would give)
    gt/shot.####.exr      depth.Z metric Z-depth; N.X, N.Y, N.Z camera-space unit normals
    cameras.json          camera_to_world per frame (OpenGL axes), intrinsics K, resolution
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bufferany_core import conventions
from bufferany_core.errors import InputNotFoundError, MissingFramesError, UnreadableImageError
from bufferany_core.framepaths import frame_path
from bufferany_core.frames import read_channels

CAMERAS_JSON = "cameras.json"
PLATE_PATTERN = "plate/shot.####.exr"
GT_PATTERN = "gt/shot.####.exr"


@dataclass(frozen=True)
class SyntheticShot:
    folder: Path
    frames: list[int]
    depth: np.ndarray  # (T, H, W) metric Z-depth
    normals: np.ndarray  # (T, H, W, 3) camera space, x right, y up, z towards the camera
    camera_to_world: np.ndarray  # (T, 4, 4), camera looks down -z
    intrinsics: np.ndarray  # (3, 3) pixels, pixel (i, j) centred at (j + 0.5, i + 0.5)
    cameras: dict  # cameras.json as written (moving objects, lens, seed, ...)

    @property
    def plate_pattern(self) -> str:
        """The plate sequence, in the `####` form the frame layer and the CLI take."""
        return str(self.folder / PLATE_PATTERN)


def _path(folder: Path, pattern: str, frame: int) -> Path:
    return folder / frame_path(pattern, frame)


def load_synthetic_shot(folder: str | Path) -> SyntheticShot:
    """Read a shot's ground truth and cameras. Raises InputNotFoundError without cameras.json,
    MissingFramesError naming the absent files, UnreadableImageError for a malformed cameras.json."""
    folder = Path(folder)
    cameras_path = folder / CAMERAS_JSON
    if not cameras_path.is_file():
        raise InputNotFoundError(f"{cameras_path} is missing: not a synthetic shot folder")
    try:
        cameras = json.loads(cameras_path.read_text())
        frames = list(range(int(cameras["first_frame"]), int(cameras["last_frame"]) + 1))
        poses = np.array([cameras["camera_to_world"][str(f)] for f in frames], dtype=np.float64)
        intrinsics = np.array(cameras["intrinsics"]["K"], dtype=np.float64)
    except (ValueError, KeyError, TypeError) as error:
        raise UnreadableImageError(f"{cameras_path}: malformed camera record ({error!r})") from error
    if poses.shape != (len(frames), 4, 4) or intrinsics.shape != (3, 3):
        raise UnreadableImageError(f"{cameras_path}: poses must be 4x4 and K 3x3")
    missing = [f for f in frames for p in (PLATE_PATTERN, GT_PATTERN) if not _path(folder, p, f).is_file()]
    if missing:
        raise MissingFramesError(f"{folder}: frames {sorted(set(missing))} lack a plate or ground truth", missing)
    gt = np.stack(
        [read_channels(_path(folder, GT_PATTERN, f), (conventions.DEPTH_CHANNEL, *conventions.NORMAL_CHANNELS))
         for f in frames]
    )  # (T, H, W, 4)
    return SyntheticShot(
        folder=folder,
        frames=frames,
        depth=gt[..., 0],
        normals=gt[..., 1:],
        camera_to_world=poses,
        intrinsics=intrinsics,
        cameras=cameras,
    )
