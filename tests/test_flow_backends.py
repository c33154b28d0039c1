"""Flow backends: DIS recovers a known translation; RAFT builds offline, pads, and loads local weights."""

import math

import pytest
import torch
from safetensors.torch import save_file

from bufferany_core.errors import MissingWeightsError
from bufferany_core.flow import DISFlow, RAFTFlow, adjacent_flows, build_raft, load_flow_estimator
from bufferany_core.models.weights import RandomWeights, deterministic_state_dict


def _texture(x, y):
    # Band-limited texture with structure at several scales and orientations (no aperture problem).
    value = 0.5 + 0.15 * torch.sin(x / 3.1 + y / 5.3) + 0.15 * torch.cos(y / 2.7 - x / 7.9)
    return value + 0.1 * torch.sin((x + 2 * y) / 4.3) * torch.cos((x - y) / 3.7)


def _shifted_pair(dx, dy, height=96, width=128):
    ys, xs = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    a = _texture(xs, ys)
    b = _texture(xs - dx, ys - dy)  # b(x + d) = a(x): content moves by d from a to b
    return a.expand(1, 3, height, width).contiguous(), b.expand(1, 3, height, width).contiguous()


def test_dis_recovers_a_known_subpixel_translation():
    a, b = _shifted_pair(2.5, -1.5)
    flow = DISFlow().estimate_flow(a, b)
    assert flow.shape == (1, 2, 96, 128) and flow.dtype == torch.float32
    interior = flow[0, :, 12:-12, 12:-12]
    assert interior[0].median().item() == pytest.approx(2.5, abs=0.15)
    assert interior[1].median().item() == pytest.approx(-1.5, abs=0.15)
    assert (interior[0] - 2.5).abs().mean() < 0.3


def test_adjacent_flows_returns_forward_and_backward_pairs():
    a, b = _shifted_pair(2.0, 1.0)
    clip = torch.cat([a, b, a])  # a -> b -> a
    fw, bw = adjacent_flows(clip, DISFlow(), batch_size=1)
    assert fw.shape == bw.shape == (2, 2, 96, 128)
    centre = (slice(None), slice(None), slice(16, -16), slice(16, -16))
    assert fw[0, 0][centre[2:]].median() == pytest.approx(2.0, abs=0.15)
    assert bw[0, 0][centre[2:]].median() == pytest.approx(-2.0, abs=0.15)
    assert fw[1, 0][centre[2:]].median() == pytest.approx(-2.0, abs=0.15)
    with pytest.raises(ValueError, match="T >= 2"):
        adjacent_flows(a, DISFlow())


def test_raft_small_with_random_weights_pads_to_multiples_of_eight():
    estimator = load_flow_estimator("raft-small", weights=RandomWeights(0), num_flow_updates=2)
    assert isinstance(estimator, RAFTFlow)
    a, b = _shifted_pair(1.0, 0.0, height=131, width=37)  # neither side a multiple of 8, one under 128
    flow = estimator.estimate_flow(torch.cat([a, b]), torch.cat([b, a]))
    assert flow.shape == (2, 2, 131, 37) and torch.isfinite(flow).all()
    again = load_flow_estimator("raft-small", weights=RandomWeights(0), num_flow_updates=2).estimate_flow(
        a, b
    )
    # Deterministic weights give the same flow (batch size changes float summation order only).
    assert torch.allclose(again, flow[:1], atol=1e-4)


def test_raft_loads_a_local_weights_file_and_never_downloads(tmp_path, monkeypatch):
    def no_download(*args, **kwargs):
        raise AssertionError("torchvision tried to download weights")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    state = deterministic_state_dict(build_raft("raft-small"), seed=3)
    path = tmp_path / "raft_small.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    from_file = load_flow_estimator("raft-small", weights=path, num_flow_updates=1)
    from_seed = load_flow_estimator("raft-small", weights=RandomWeights(3), num_flow_updates=1)
    a, b = _shifted_pair(1.0, 0.0, height=32, width=40)  # padded to 128 x 128
    assert torch.equal(from_file.estimate_flow(a, b), from_seed.estimate_flow(a, b))


def test_missing_raft_weights_raise_and_auto_falls_back_to_dis(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("BUFFERANY_MODELS", raising=False)
    with pytest.raises(MissingWeightsError, match="raft_large_C_T_SKHT_V2"):
        load_flow_estimator("raft-large", models_dir=tmp_path)
    assert load_flow_estimator("auto", models_dir=tmp_path).name == "dis"
    with pytest.raises(MissingWeightsError, match="do not fit raft-large: 169 missing keys"):
        build_raft("raft-large", state_dict={"nonsense": torch.zeros(1)})


def test_dis_estimates_rest_as_zero_flow():
    a, _ = _shifted_pair(0.0, 0.0)
    flow = DISFlow().estimate_flow(a, a)
    assert flow.abs().max() < 1e-3 * math.sqrt(2) + 1e-2
