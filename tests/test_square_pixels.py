"""Anamorphic plates: the models and the stabiliser's flow see square pixels, the passes come back on the
plate's grid (pipeline.square_pixels, flow.anamorphic)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bufferany_core import conventions
from bufferany_core.flow.anamorphic import plate_pairs, square_shape, to_square
from bufferany_core.flow.pairs import FramePairs
from bufferany_core.frames import ImageInfo, read_channels, read_info, write_exr
from bufferany_core.jobs import RenderJob
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.render import plan_render, run_render
from bufferany_core.pipeline.square_pixels import to_plate
from bufferany_core.testing.procedural_shot import procedural_shot

ASPECT = 2.0


def test_square_shape_stretches_the_short_pixel_dimension():
    assert square_shape(858, 1024, 2.0) == (858, 2048)
    assert square_shape(200, 100, 0.5) == (400, 100)
    assert square_shape(24, 40, 1.0) == (24, 40)
    frames = torch.rand(2, 3, 8, 10)
    assert to_square(frames, 1.0) is frames
    assert to_square(frames, 2.0).shape == (2, 3, 8, 20)


def _plane_points(rays_x: np.ndarray, rays_y: np.ndarray, normal: np.ndarray, d: float) -> np.ndarray:
    """Points (3, H, W) where rays (x, y, 1) meet the plane normal . X = d."""
    rays = np.stack([rays_x, rays_y, np.ones_like(rays_x)])
    return rays * (d / np.einsum("i,ihw->hw", normal, rays))


def _normal_from_points(points: np.ndarray) -> np.ndarray:
    """The unit normal of a surface sampled on a grid (cross product of its grid steps), at the centre."""
    du = points[:, 1:, 1:] - points[:, 1:, :-1]
    dv = points[:, 1:, 1:] - points[:, :-1, 1:]
    n = np.cross(du, dv, axis=0)[:, 4, 4]
    n = n / np.linalg.norm(n)
    return n if n[2] < 0 else -n  # facing the camera (z forward here)


def test_normals_of_an_analytic_plane_on_the_plate_grid():
    """The camera-space normal a model predicts from the square view is the plate's camera-space normal:
    the squeeze changes the sampling (fx = f / a), not camera space. Treating the plate's pixels as
    square instead gives the squeezed world's normal J^-T n = (a nx, ny, nz) / |.|: what a model fed the
    squeezed plate sees, the error square pixels remove."""
    true = np.array([0.4, -0.3, -1.0])
    true /= np.linalg.norm(true)
    f, height, width = 50.0, 10, 10  # square view: focal f; the plate: width / a pixels, fx = f / a
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    square = _plane_points((u - 4.5) / f, (v - 4.5) / f, true, d=-5.0)
    plate_u = u / ASPECT  # plate pixel columns (sub-sampled positions are fine for a plane)
    with_aspect = _plane_points((plate_u - 4.5 / ASPECT) / (f / ASPECT), (v - 4.5) / f, true, d=-5.0)
    as_if_square = with_aspect * np.array([1.0 / ASPECT, 1.0, 1.0])[:, None, None]  # rays built with fx = f
    np.testing.assert_allclose(_normal_from_points(square), true, atol=1e-9)
    np.testing.assert_allclose(_normal_from_points(with_aspect), true, atol=1e-9)
    squeezed = true * np.array([ASPECT, 1.0, 1.0])  # J^-T n, J = d(plate)/d(view) = diag(1 / a, 1)
    np.testing.assert_allclose(_normal_from_points(as_if_square), squeezed / np.linalg.norm(squeezed), atol=1e-9)
    # so the render resamples the model's normals to the plate's grid as vectors, unchanged
    field = torch.from_numpy(np.broadcast_to(true[None, :, None, None], (1, 3, 8, 16)).copy()).float()
    back = to_plate(field, 8, 8, normals=True)
    np.testing.assert_allclose(back[0, :, 3, 3].numpy(), true, atol=1e-6)


def test_flow_from_the_square_view_maps_back_as_a_displacement():
    """A view-space translation (dx', dy) is (dx' / a, dy) in plate pixels; validity follows the grid."""
    flows = torch.zeros(1, 2, 6, 16)
    flows[:, 0], flows[:, 1] = 3.0, -1.0
    valid = torch.ones(1, 1, 6, 16, dtype=torch.bool)
    valid[..., :, :4] = False
    back = plate_pairs(FramePairs(flows, -flows, valid, valid), 6, 8)
    assert back.flows_fw.shape == (1, 2, 6, 8)
    np.testing.assert_allclose(back.flows_fw[0, 0].numpy(), 1.5, atol=1e-6)
    np.testing.assert_allclose(back.flows_fw[0, 1].numpy(), -1.0, atol=1e-6)
    assert not back.valid_fw[0, 0, :, :2].any() and back.valid_fw[0, 0, :, 2:].all()


# -- the same scene as a 1.0 plate and as a 2.0 plate ---------------------------------------------------

FRAMES, HEIGHT, WIDE = 8, 32, 96  # the square plate; the anamorphic one is WIDE / 2 pixels wide
TINY = dict(
    depth_model="video-depth-anything-tiny",
    normal_model="marigold-e2e-ft-normals-tiny",
    weights="random:3",
    device="cpu",
    depth_processing_size=28,
    normal_processing_size=48,
    stabilize="off",
    input_colorspace="srgb_tx",  # the plates hold what the models see: resampling commutes with no colour transform
)


def _write(folder, plate: np.ndarray, pixel_aspect: float) -> str:
    t, _, height, width = plate.shape
    like = ImageInfo(
        width=width, height=height, data_window=(0, 0, width, height), display_window=(0, 0, width, height),
        pixel_aspect=pixel_aspect, channels=("R", "G", "B"), channel_formats=("float",) * 3, metadata={"camera": "A"},
    )
    folder.mkdir(parents=True)
    for k in range(t):
        channels = {c: plate[k, i] for i, c in enumerate("RGB")}
        write_exr(folder / f"plate.{k + 1:04d}.exr", channels, like=like)
    return str(folder / "plate.####.exr")


def _squeeze(values: np.ndarray) -> np.ndarray:
    """(..., W) -> (..., W / 2): a 2:1 anamorphic squeeze (box average of column pairs)."""
    return 0.5 * (values[..., 0::2] + values[..., 1::2])


def _passes(pattern: str, predictors: PredictorCache, **extra) -> tuple[np.ndarray, np.ndarray, list]:
    job = RenderJob(input=pattern, **{**TINY, **extra})
    run_render(job, predictors=predictors)
    plan = plan_render(job)
    paths = [plan.output.path(f) for f in plan.shot]
    depth = np.stack([read_channels(p, [conventions.DEPTH_CHANNEL])[..., 0] for p in paths])
    normals = (
        np.stack([read_channels(p, conventions.NORMAL_CHANNELS) for p in paths]).transpose(0, 3, 1, 2)
        if "normal" in job.passes
        else None
    )
    return depth, normals, paths


@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    folder = tmp_path_factory.mktemp("anamorphic")
    shot = procedural_shot(frames=FRAMES, height=HEIGHT, width=WIDE, truck=0.04)
    predictors = PredictorCache()
    squeezed_plate = _squeeze(shot.plate)  # the scene shot through a 2x anamorphic lens
    # the same scene with square pixels, by resampling: random-weight models turn the small differences
    # between the procedural 1.0 render and a squeezed-and-stretched copy of it into ~20 degrees of normals
    # and ~10% of depth, which would hide what this test is about (the geometry around the models)
    desqueezed = to_square(torch.from_numpy(squeezed_plate), ASPECT, clamp=True).numpy()
    square = _passes(_write(folder / "square", desqueezed, 1.0), predictors)
    anamorphic = _passes(_write(folder / "anamorphic", squeezed_plate, ASPECT), predictors)
    ignored = _passes(_write(folder / "ignored", squeezed_plate, 1.0), predictors)  # before: aspect ignored
    return square, anamorphic, ignored


def _depth_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean() / (np.percentile(b, 98) - np.percentile(b, 2)))


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    cos = np.clip((a * b).sum(axis=1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1), -1, 1)
    return float(np.degrees(np.arccos(cos)).mean())


def test_a_2_to_1_plate_gives_the_passes_of_the_same_scene_with_square_pixels(renders):
    """The 2.0 plate's passes equal the 1.0 plate's passes squeezed 2:1 (box average of column pairs):
    depth within 2% of its range (mean; measured 0.7%: the alignment samples other pixels), normals within
    2 degrees (mean; measured 0.00), where ignoring the pixel aspect, as renders did before, is 38% and
    84 degrees off."""
    (depth1, normals1, _), (depth2, normals2, _), (depth0, normals0, _) = renders
    depth_ref, normals_ref = _squeeze(depth1), _squeeze(normals1)
    normals_ref = normals_ref / np.linalg.norm(normals_ref, axis=1, keepdims=True)
    depth_err, normal_err = _depth_error(depth2, depth_ref), _angle(normals2, normals_ref)
    ignored_depth, ignored_normal = _depth_error(depth0, depth_ref), _angle(normals0, normals_ref)
    print(f"depth {depth_err:.4f} (aspect ignored {ignored_depth:.4f}); normals {normal_err:.2f} deg ({ignored_normal:.2f})")
    assert depth_err < 0.02 and normal_err < 2.0
    assert ignored_depth > 3 * depth_err and ignored_normal > 3 * normal_err


def test_the_passes_keep_the_anamorphic_plates_geometry(renders):
    _, (depth2, _, paths), _ = renders
    info = read_info(paths[0])
    plate = read_info(paths[0].parent / "plate.0001.exr")
    assert depth2.shape[1:] == (HEIGHT, WIDE // 2)
    assert info.pixel_aspect == plate.pixel_aspect == ASPECT
    assert (info.data_window, info.display_window) == (plate.data_window, plate.display_window)
    assert info.metadata["camera"] == "A"


def test_the_stabilisers_flow_runs_on_square_pixels():
    """A scene moving 4 view pixels right moves 2 pixels of a 2:1 plate: the flow of the squeezed frames,
    computed on their square view, says so (DIS, interior pixels)."""
    from bufferany_core.flow.anamorphic import square_frame_pairs
    from bufferany_core.flow.backends import load_flow_estimator

    image = torch.from_numpy(procedural_shot(frames=1, height=48, width=136).plate[0])
    frames = torch.stack([image[..., 4:132], image[..., 0:128]])  # (2, 3, 48, 128), content moves +4 px
    squeezed = 0.5 * (frames[..., 0::2] + frames[..., 1::2])
    pairs = square_frame_pairs(squeezed, load_flow_estimator("dis", device=torch.device("cpu")), pixel_aspect=ASPECT)
    assert pairs.flows_fw.shape == (1, 2, 48, 64)
    inner = pairs.flows_fw[0, :, 8:-8, 8:-8]
    assert abs(float(inner[0].median()) - 2.0) < 0.25 and abs(float(inner[1].median())) < 0.25
