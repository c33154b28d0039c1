"""Accuracy and temporal-consistency metrics for depth and normal passes.

Layouts (numpy, channels last, as EXR reads give them): depth (T, H, W); normals (T, H, W, 3);
frames (T, H, W, 3) display-referred RGB in [0, 1]; flows (T-1, H, W, 2) in pixels, channel 0 = x;
valid masks (T, H, W) bool.

Depth follows the DepthCrafter / Video Depth Anything protocol: predictions are relative inverse
depth (disparity), aligned to the ground truth with ONE least-squares scale and shift per shot in
disparity space over every valid pixel of every frame, clipped to the ground truth's depth range,
then compared as depth.

Cameras (for TAE): `camera_to_world` (T, 4, 4) with OpenGL/Blender camera axes (x right, y up,
looking down -z), the same axes as the project's camera-space normals; `intrinsics` K (3, 3) in
pixels with the centre of pixel (row i, column j) at (j + 0.5, i + 0.5), y pointing down the image.
This is what the synthetic shots' cameras.json holds.
"""

from __future__ import annotations

import numpy as np

from bufferany_core.conventions import DepthConvention
from bufferany_core.scale_shift import fit_scale_shift

DELTA1_THRESHOLD = 1.25
NORMAL_ANGLE_THRESHOLDS = (11.25, 22.5, 30.0)  # degrees
# NVDS's photometric weight exp(-alpha * |I_t - warped I_{t-1}|^2), RGB in [0, 1].
OPW_ALPHA = 50.0


# --- Shapes -------------------------------------------------------------------------------------------
def _check_depth(name: str, depth: np.ndarray) -> np.ndarray:
    depth = np.asarray(depth, dtype=np.float64)
    if depth.ndim != 3:
        raise ValueError(f"{name} must be (T, H, W), got {depth.shape}")
    return depth


def _check_normals(name: str, normals: np.ndarray) -> np.ndarray:
    normals = np.asarray(normals, dtype=np.float64)
    if normals.ndim != 4 or normals.shape[-1] != 3:
        raise ValueError(f"{name} must be (T, H, W, 3), got {normals.shape}")
    return normals


def _check_same(shape: tuple, **arrays: np.ndarray) -> None:
    for name, array in arrays.items():
        if array is not None and np.shape(array) != shape:
            raise ValueError(f"{name} has shape {np.shape(array)}, expected {shape}")


def _valid_mask(valid: np.ndarray | None, shape: tuple, *finite: np.ndarray) -> np.ndarray:
    mask = np.ones(shape, bool) if valid is None else np.asarray(valid, bool)
    _check_same(shape, valid=mask)
    for array in finite:
        mask = mask & np.all(np.isfinite(array.reshape(*shape, -1)), axis=-1)
    if not mask.any():
        raise ValueError("no valid pixel to evaluate")
    return mask


# --- Depth accuracy -----------------------------------------------------------------------------------
def _align(prediction, gt_depth, valid, convention, depth_range):
    prediction = _check_depth("prediction", prediction)
    gt_depth = _check_depth("gt_depth", gt_depth)
    _check_same(gt_depth.shape, prediction=prediction)
    mask = _valid_mask(valid, gt_depth.shape, prediction, gt_depth) & (gt_depth > 0)
    if DepthConvention(convention) == DepthConvention.INVERSE:
        disparity = prediction
    else:
        with np.errstate(divide="ignore"):
            disparity = 1.0 / prediction
        mask &= np.isfinite(disparity)
    if not mask.any():
        raise ValueError("no valid pixel to evaluate")
    scale, shift = fit_scale_shift([disparity[mask][None]], [1.0 / gt_depth[mask][None]])  # (1, N) each
    near, far = depth_range if depth_range is not None else (gt_depth[mask].min(), gt_depth[mask].max())
    if not 0 < near <= far:
        raise ValueError(f"depth_range must satisfy 0 < near <= far, got ({near}, {far})")
    aligned = np.clip(scale * disparity + shift, 1.0 / far, 1.0 / near)
    return 1.0 / aligned, scale, shift, gt_depth, mask


def align_depth(
    prediction: np.ndarray,
    gt_depth: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    convention: DepthConvention = DepthConvention.INVERSE,
    depth_range: tuple[float, float] | None = None,
) -> tuple[np.ndarray, float, float]:
    """Prediction (T, H, W) -> metric depth (T, H, W) on the ground truth's scale.

    One (scale, shift) fitted by least squares in disparity space on all valid pixels of all
    frames: `scale * disparity(prediction) + shift ~ 1 / gt_depth`. A DISTANCE prediction is
    inverted first. The aligned disparity is clipped to 1 / `depth_range` (default: the valid
    ground truth's min and max), then inverted. Returns (depth, scale, shift).
    """
    depth, scale, shift, _, _ = _align(prediction, gt_depth, valid, convention, depth_range)
    return depth, scale, shift


def depth_accuracy(
    prediction: np.ndarray,
    gt_depth: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    convention: DepthConvention = DepthConvention.INVERSE,
    depth_range: tuple[float, float] | None = None,
) -> dict:
    """AbsRel and delta1 (share of pixels with max(d/g, g/d) < 1.25) after shot-wide alignment
    (`align_depth`), over all valid pixels of the shot, plus per-frame AbsRel and the fit."""
    depth, scale, shift, gt_depth, mask = _align(prediction, gt_depth, valid, convention, depth_range)
    safe_gt = np.where(mask, gt_depth, 1.0)
    safe_depth = np.where(mask, depth, 1.0)
    relative = np.abs(safe_depth - safe_gt) / safe_gt
    ratio = np.maximum(safe_depth / safe_gt, safe_gt / safe_depth)
    per_frame = [float(relative[t][mask[t]].mean()) if mask[t].any() else float("nan") for t in range(len(mask))]
    return {
        "abs_rel": float(relative[mask].mean()),
        "delta1": float(np.mean(ratio[mask] < DELTA1_THRESHOLD)),
        "abs_rel_per_frame": per_frame,
        "scale": scale,
        "shift": shift,
    }


def temporal_gradient_error(
    depth: np.ndarray, gt_depth: np.ndarray, valid: np.ndarray | None = None
) -> float:
    """Mean over consecutive frames of |(d_{t+1} - d_t) - (g_{t+1} - g_t)| / g_{t+1}, on pixels valid
    in both frames: how far the frame-to-frame change of an (aligned, metric) depth departs from the
    true change. Pass the output of `align_depth`, not raw predictions."""
    depth = _check_depth("depth", depth)
    gt_depth = _check_depth("gt_depth", gt_depth)
    _check_same(gt_depth.shape, depth=depth)
    if len(depth) < 2:
        raise ValueError("temporal metrics need at least 2 frames")
    mask = _valid_mask(valid, gt_depth.shape, depth, gt_depth) & (gt_depth > 0)
    pair = mask[1:] & mask[:-1]
    if not pair.any():
        raise ValueError("no pixel is valid in two consecutive frames")
    error = np.abs(np.diff(depth, axis=0) - np.diff(gt_depth, axis=0))[pair] / gt_depth[1:][pair]
    return float(error.mean())


# --- Camera geometry ----------------------------------------------------------------------------------
def unproject(depth: np.ndarray, intrinsics: np.ndarray) -> np.ndarray:
    """Z-depth (H, W) -> camera-space points (H, W, 3), OpenGL axes (the camera looks down -z)."""
    k = np.asarray(intrinsics, np.float64)
    if k.shape != (3, 3):
        raise ValueError(f"intrinsics must be 3x3, got {k.shape}")
    height, width = depth.shape
    x = (np.arange(width) + 0.5 - k[0, 2]) / k[0, 0]
    y = -(np.arange(height) + 0.5 - k[1, 2]) / k[1, 1]
    xx, yy = np.meshgrid(x, y)
    return np.stack([xx * depth, yy * depth, -depth], axis=-1)


def reproject_depth(
    depth: np.ndarray,
    valid: np.ndarray,
    source_to_world: np.ndarray,
    target_to_world: np.ndarray,
    intrinsics: np.ndarray,
) -> np.ndarray:
    """Move a Z-depth map (H, W) from the source camera into the target camera: every valid pixel
    is unprojected, transformed and splatted to its nearest target pixel, keeping the nearest
    surface. Returns the target-grid Z-depth (H, W), NaN where no source pixel lands."""
    height, width = depth.shape
    points = unproject(depth, intrinsics)[valid]  # (N, 3)
    relative = np.linalg.inv(np.asarray(target_to_world, np.float64)) @ np.asarray(source_to_world, np.float64)
    moved = points @ relative[:3, :3].T + relative[:3, 3]  # (N, 3) in the target camera
    z = -moved[:, 2]
    ahead = z > 0
    k = np.asarray(intrinsics, np.float64)
    u = np.floor(k[0, 0] * moved[ahead, 0] / z[ahead] + k[0, 2]).astype(np.int64)
    v = np.floor(-k[1, 1] * moved[ahead, 1] / z[ahead] + k[1, 2]).astype(np.int64)
    z = z[ahead]
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    out = np.full(height * width, np.inf)
    np.minimum.at(out, v[inside] * width + u[inside], z[inside])  # z-buffer: nearest surface wins
    out[np.isinf(out)] = np.nan
    return out.reshape(height, width)


def temporal_alignment_error(
    depth: np.ndarray,
    camera_to_world: np.ndarray,
    intrinsics: np.ndarray,
    valid: np.ndarray | None = None,
) -> float:
    """TAE (Video Depth Anything): for each consecutive pair, the aligned depth of frame k is
    reprojected into frame k+1 with the known poses and compared with frame k+1's depth by AbsRel,
    and the same from k+1 back to k; TAE is the mean of the 2(T-1) AbsRel values.

    Pass metric depth (`align_depth` output, or ground truth). Pixels where nothing lands, or that
    are invalid in the frame compared with, do not count. Moving objects count as errors: with
    ground truth depth TAE is small but not 0. Unlike Video Depth Anything's script, points landing
    on the same pixel keep the nearest (theirs keeps an arbitrary one), and its tables show TAE x 100."""
    depth = _check_depth("depth", depth)
    poses = np.asarray(camera_to_world, np.float64)
    if poses.shape != (len(depth), 4, 4):
        raise ValueError(f"camera_to_world must be ({len(depth)}, 4, 4), got {poses.shape}")
    if len(depth) < 2:
        raise ValueError("temporal metrics need at least 2 frames")
    mask = _valid_mask(valid, depth.shape, depth) & (depth > 0)
    errors = []
    for a, b in [(k, k + 1) for k in range(len(depth) - 1)] + [(k + 1, k) for k in range(len(depth) - 1)]:
        moved = reproject_depth(depth[a], mask[a], poses[a], poses[b], intrinsics)
        both = np.isfinite(moved) & mask[b]
        if both.any():
            errors.append(np.mean(np.abs(moved[both] - depth[b][both]) / depth[b][both]))
    if not errors:
        raise ValueError("no frame pair overlaps after reprojection")
    return float(np.mean(errors))


# --- Normal accuracy ----------------------------------------------------------------------------------
def angular_error(prediction: np.ndarray, gt_normals: np.ndarray) -> np.ndarray:
    """Angle in degrees between normals (..., 3), each normalised first."""
    p = np.asarray(prediction, np.float64)
    g = np.asarray(gt_normals, np.float64)
    p = p / np.maximum(np.linalg.norm(p, axis=-1, keepdims=True), 1e-12)
    g = g / np.maximum(np.linalg.norm(g, axis=-1, keepdims=True), 1e-12)
    return np.degrees(np.arccos(np.clip(np.sum(p * g, axis=-1), -1.0, 1.0)))


def normal_accuracy(prediction: np.ndarray, gt_normals: np.ndarray, valid: np.ndarray | None = None) -> dict:
    """Mean and median angular error (degrees) and the share of pixels under 11.25, 22.5 and 30
    degrees, over all valid pixels of the shot; plus per-frame mean error."""
    prediction = _check_normals("prediction", prediction)
    gt_normals = _check_normals("gt_normals", gt_normals)
    _check_same(gt_normals.shape, prediction=prediction)
    mask = _valid_mask(valid, gt_normals.shape[:-1], prediction, gt_normals)
    angles = angular_error(prediction, gt_normals)
    result = {"mean_angle": float(angles[mask].mean()), "median_angle": float(np.median(angles[mask]))}
    for threshold in NORMAL_ANGLE_THRESHOLDS:
        result[f"within_{threshold:g}"] = float(np.mean(angles[mask] < threshold))
    result["mean_angle_per_frame"] = [
        float(angles[t][mask[t]].mean()) if mask[t].any() else float("nan") for t in range(len(mask))
    ]
    return result


# --- Flow-warped consistency (OPW) --------------------------------------------------------------------
def _warp_previous(values: np.ndarray, flows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """values (T, H, W, C): frame t-1 resampled on frame t's grid along flows[t-1] (t -> t-1).
    Returns warped (T-1, H, W, C) and in-frame (T-1, H, W)."""
    import torch

    from bufferany_core.flow.warp import backward_warp

    image = torch.from_numpy(np.ascontiguousarray(values[:-1].transpose(0, 3, 1, 2)))  # (T-1, C, H, W)
    flow = torch.from_numpy(np.ascontiguousarray(flows.transpose(0, 3, 1, 2))).to(image.dtype)  # (T-1, 2, H, W)
    warped, inside = backward_warp(image, flow)
    return warped.numpy().transpose(0, 2, 3, 1), inside[:, 0].numpy()


def _check_flow_inputs(values: np.ndarray, frames, flows, valid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Returns (frames, flows) as float64 and the valid mask (T, H, W)."""
    t, h, w = values.shape[:3]
    if t < 2:
        raise ValueError("temporal metrics need at least 2 frames")
    frames = np.asarray(frames, np.float64)
    flows = np.asarray(flows, np.float64)
    _check_same((t, h, w, 3), frames=frames)
    _check_same((t - 1, h, w, 2), flows=flows)
    return frames, flows, _valid_mask(valid, (t, h, w), values)


def _opw(values: np.ndarray, frames: np.ndarray, flows: np.ndarray, mask: np.ndarray, distance) -> float:
    """values (T, H, W, C), mask (T, H, W) from `_check_flow_inputs`; distance(a, b) -> (T-1, H, W)."""
    values = np.where(mask[..., None], values, 0.0)  # invalid pixels must not bleed into bilinear samples
    warped, inside = _warp_previous(values, flows)
    warped_rgb, _ = _warp_previous(frames, flows)
    warped_mask, _ = _warp_previous(mask[..., None].astype(np.float64), flows)
    weight = np.exp(-OPW_ALPHA * np.sum((frames[1:] - warped_rgb) ** 2, axis=-1))  # (T-1, H, W)
    # Counted: lands inside frame t-1, and every pixel the bilinear sample touches there is valid.
    counted = inside & mask[1:] & (warped_mask[..., 0] > 0.999)
    if not counted.any():
        raise ValueError("no pixel has a flow correspondence inside the previous frame")
    error = weight * distance(values[1:], warped)  # (T-1, H, W)
    return float(np.mean([error[t][counted[t]].mean() for t in range(len(error)) if counted[t].any()]))


def _robust_normalise(depth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per frame: subtract the median, divide by the mean absolute deviation (valid pixels only)."""
    out = np.empty_like(depth)
    for t in range(len(depth)):
        values = depth[t][mask[t]]
        median = np.median(values)
        spread = max(np.mean(np.abs(values - median)), 1e-6)
        out[t] = (depth[t] - median) / spread
    return out


def depth_opw(
    prediction: np.ndarray, frames: np.ndarray, flows: np.ndarray, valid: np.ndarray | None = None
) -> float:
    """OPW (NVDS): mean over consecutive pairs of mean_x M(x) |D_t(x) - D_{t-1}(x + F(x))|, with
    F = flows[t-1] the optical flow from frame t to frame t-1, each D normalised per frame (median
    0, mean absolute deviation 1) so no alignment is needed, and M = exp(-50 |I_t - warped I_{t-1}|^2)
    down-weighting pixels whose colour does not follow the flow (occlusions, flow errors).
    Pixels that flow out of the frame or onto an invalid pixel do not count. (NVDS's script also
    multiplies by 10; this is the plain mean.)"""
    prediction = _check_depth("prediction", prediction)
    frames, flows, mask = _check_flow_inputs(prediction, frames, flows, valid)
    normalised = _robust_normalise(prediction, mask)
    return _opw(normalised[..., None], frames, flows, mask, lambda a, b: np.abs(a - b)[..., 0])


def normal_opw(
    prediction: np.ndarray, frames: np.ndarray, flows: np.ndarray, valid: np.ndarray | None = None
) -> float:
    """OPW on normals: as `depth_opw`, with the distance |n_t - warped n_{t-1}| (Euclidean, between
    unit vectors: 0 to 2) in place of the depth difference. Camera-space normals of a static
    surface change when the camera turns, so even ground truth scores above 0 on a panning shot."""
    prediction = _check_normals("prediction", prediction)
    frames, flows, mask = _check_flow_inputs(prediction, frames, flows, valid)
    prediction = prediction / np.maximum(np.linalg.norm(prediction, axis=-1, keepdims=True), 1e-12)
    return _opw(prediction, frames, flows, mask, lambda a, b: np.linalg.norm(a - b, axis=-1))
