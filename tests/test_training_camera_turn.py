"""L_stable on normals with the camera's turn undone (`loss.stable_rotation`): the turn between frames
is recovered from the normals along the flow, despite wrong correspondences; with it undone a pure
camera turn costs nothing while plain L_stable charges it; the switch reaches `bufferany-train`."""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from bufferany_training.camera_turn import pair_rotations
from bufferany_training.config import load_config
from bufferany_training.data import ClipDataset, collate_clips, discover_clips
from bufferany_training.normal_task import NormalTask
from bufferany_training.trainer import train
from training_clips import one_torch_thread, tiny_normal_config, write_moving_clip  # noqa: F401 (autouse fixture)

from bufferany_core.errors import BadArgumentsError
from bufferany_core.flow import pair_validity
from bufferany_core.losses import stable_loss

AXIS = F.normalize(torch.tensor([0.3, 1.0, 0.2], dtype=torch.float64), dim=0)


def _turn(degrees: float) -> torch.Tensor:
    """The rotation by `degrees` about AXIS (Rodrigues)."""
    angle = math.radians(degrees)
    x, y, z = AXIS.tolist()
    skew = torch.tensor([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]], dtype=torch.float64)
    return torch.eye(3, dtype=torch.float64) + math.sin(angle) * skew + (1 - math.cos(angle)) * skew @ skew


def _turning_clip(
    turns: list[float], *, shift: int = 2, height: int = 24, width: int = 40, outliers: float = 0.0
):
    """Unit normals (1, T, 3, H, W) of a bumpy surface facing the camera, sliding `shift` px right per
    frame while the camera turns by turns[k] degrees between frames k and k+1 (every normal of frame
    k+1 is frame k's, turned), with its exact flows and cycle masks. `outliers`: the share of each
    frame's pixels replaced by random normals (what wrong flows and moving objects look like)."""
    generator = torch.Generator().manual_seed(3)
    frames = len(turns) + 1
    span = width + shift * frames
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-3, 3, span), indexing="ij")
    surface = torch.stack(
        [torch.sin(3 * xs) * torch.cos(2 * ys), torch.sin(2 * ys + xs), torch.full_like(xs, 1.2)]
    )
    surface = F.normalize(surface.double(), dim=0)  # (3, H, span): normals in many directions
    turned, video = torch.eye(3, dtype=torch.float64), []
    for k in range(frames):
        if k:
            turned = _turn(turns[k - 1]) @ turned
        window = surface[:, :, shift * (frames - k) : shift * (frames - k) + width]
        video.append(torch.einsum("ij,jhw->ihw", turned, window))
    video = torch.stack(video).float()
    if outliers:
        wrong = torch.rand(frames, 1, height, width, generator=generator) < outliers
        noise = F.normalize(torch.randn(frames, 3, height, width, generator=generator), dim=1)
        video = torch.where(wrong, noise, video)
    fw = torch.zeros(frames - 1, 2, height, width)
    fw[:, 0] = shift
    valid_fw, valid_bw = pair_validity(fw, -fw)
    return video[None], fw[None], -fw[None], valid_fw[None], valid_bw[None]


def _angle_between(a: torch.Tensor, b: torch.Tensor) -> float:
    """Degrees of the rotation a^T b (3, 3)."""
    cos = ((a.double().T @ b.double()).trace() - 1) / 2
    return math.degrees(math.acos(float(cos.clamp(-1, 1))))


def test_the_turn_is_recovered_from_normals_with_wrong_correspondences():
    turns = [0.5, 1.0, 1.5, 2.0, 2.5]  # a camera starting to turn, as the miniature's shots do
    video, fw, _, valid_fw, _ = _turning_clip(turns, outliers=0.15)
    rotations = pair_rotations(video, fw, valid_fw)
    assert rotations.shape == (1, len(turns), 3, 3)
    for k, degrees in enumerate(turns):
        assert torch.linalg.det(rotations[0, k].double()).item() == pytest.approx(1.0, abs=1e-5)
        assert _angle_between(rotations[0, k], _turn(degrees)) < 0.1, k


def test_a_pair_without_valid_pixels_gets_no_turn_and_a_flat_wall_a_rotation():
    video, fw, _, valid_fw, _ = _turning_clip([2.0])
    assert torch.equal(pair_rotations(video, fw, torch.zeros_like(valid_fw))[0, 0], torch.eye(3))
    wall = F.normalize(torch.tensor([0.2, 0.1, 1.0]), dim=0)[None, None, :, None, None].expand(1, 2, 3, 8, 8)
    flat = pair_rotations(wall, torch.zeros(1, 1, 2, 8, 8), torch.ones(1, 1, 1, 8, 8, dtype=torch.bool))[0, 0]
    assert torch.linalg.det(flat.double()).item() == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(flat @ wall[0, 0, :, 0, 0], wall[0, 0, :, 0, 0], atol=1e-5)


def test_a_pure_camera_turn_costs_nothing_with_the_turn_undone_and_plain_l_stable_charges_it():
    video, fw, bw, valid_fw, valid_bw = _turning_clip([2.0, 2.0, 2.0])
    plain = stable_loss(video, fw, bw, valid_fw, valid_bw).item()
    undone = stable_loss(
        video, fw, bw, valid_fw, valid_bw, rotations=pair_rotations(video, fw, valid_fw)
    ).item()
    assert plain > 0.01  # a 2-degree turn moves unit normals by ~0.035
    assert undone < 0.01 * plain
    identity = torch.eye(3).expand(1, 3, 3, 3)
    assert stable_loss(video, fw, bw, valid_fw, valid_bw, rotations=identity).item() == pytest.approx(
        plain, rel=1e-6
    )
    with pytest.raises(ValueError, match="rotations"):
        stable_loss(video[:, :, :1], fw, bw, valid_fw, valid_bw, rotations=identity)


RUN = {"optim.iterations": 2, "run.device": "cpu", "run.progress": False}


def test_the_switch_reaches_the_normal_trainer(tmp_path):
    clips = write_moving_clip(tmp_path / "clips" / "a", frames=4, size=(32, 48)).parent
    stable = {}
    for rotation in ("off", "video", "prior"):
        config = tiny_normal_config(**RUN, **{"loss.stable_rotation": rotation})
        torch.manual_seed(0)  # the same fresh temporal blocks: the same first prediction
        task = NormalTask(config)
        batch = collate_clips([ClipDataset(discover_clips(clips), config.data, seed=0, with_flows=True)[0]])
        task.train_mode()
        metrics = task.step(task.objective, batch, amp=contextlib.nullcontext, log=False)
        stable[rotation] = float(metrics["loss/stable"])
    # The random model's normals change between frames; the fitted turn explains part of it. Before
    # any step the video model predicts what the prior does: both sources give the same turn.
    assert stable["video"] < stable["off"]
    assert stable["prior"] == pytest.approx(stable["video"], rel=1e-5)
    weights = train(
        tiny_normal_config(**RUN, **{"loss.stable_rotation": "video"}), data=clips, out=tmp_path / "run", say=lambda _: None
    )
    assert weights.is_file()
    assert 'stable_rotation = "video"' in (tmp_path / "run" / "config.toml").read_text()


def test_the_switch_is_for_normals_only():
    with pytest.raises(BadArgumentsError, match="loss.stable_rotation"):
        load_config(Path("depth.toml"), ['loss.stable_rotation="video"'])
    with pytest.raises(BadArgumentsError, match="loss.stable_rotation"):
        load_config(Path("normal.toml"), ["loss.stable_rotation=true"])
    assert load_config(Path("normal.toml")).loss.stable_rotation == "off"
