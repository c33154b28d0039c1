"""Saving a training checkpoint never leaves zero valid checkpoints, even when the same step is saved
again and the process dies between the renames (keep=1)."""

from __future__ import annotations

import os

import pytest
import torch
from bufferany_training import checkpoint as ckpt


def _save(run, step, value, *, keep=1):
    weight = torch.nn.Parameter(torch.full((2,), float(value)))
    optimizer = torch.optim.AdamW([weight], lr=0.1)
    return ckpt.save_checkpoint(
        run,
        step=step,
        save_weights=lambda path: path.write_text(str(value)),
        optimizer=optimizer,
        rng_states=[ckpt.rng_state()],
        extra={"value": value},
        keep=keep,
    )


def test_saving_a_step_again_replaces_it(tmp_path):
    _save(tmp_path, 5, 1.0)
    _save(tmp_path, 5, 2.0)
    latest = ckpt.latest_checkpoint(tmp_path)
    assert latest.step == 5 and latest.state["value"] == 2.0
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir()] == ["step_00000005"]


def test_a_crash_between_the_renames_leaves_a_checkpoint(tmp_path, monkeypatch):
    _save(tmp_path, 5, 1.0)
    real_replace = os.replace
    calls = []

    def dying(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:  # the old folder is aside, the new one not yet in place: the process dies
            raise KeyboardInterrupt
        return real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", dying)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 5, 2.0)
    monkeypatch.setattr(ckpt.os, "replace", real_replace)
    assert not (tmp_path / "checkpoints" / "step_00000005").exists()
    latest = ckpt.latest_checkpoint(tmp_path)  # found again beside its name
    assert latest.step == 5 and latest.state["value"] == 1.0
    assert (tmp_path / "checkpoints" / "step_00000005" / "state.json").is_file()
