"""Fake Nuke set-up for the BufferAnytime node's tests: import paths, a fresh script, EXR plates."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
import pytest

REPO = Path(__file__).resolve().parents[1]
FAKE_NUKE = REPO / "tests" / "fake_nuke"
PLUGIN = REPO / "nuke_plugin"
for _path in (FAKE_NUKE, PLUGIN):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import nuke  # noqa: E402  (the fake, from tests/fake_nuke)

FIRST, LAST = 1001, 1004
WIDTH, HEIGHT, PIXEL_ASPECT = 40, 24, 2.0  # anamorphic: the node must keep the pixel aspect


def write_plate(folder: Path, first: int = FIRST, last: int = LAST, *, gain: float = 1.0) -> str:
    """An RGBA float EXR sequence `plate.####.exr` with a moving gradient; returns its pattern."""
    folder.mkdir(parents=True, exist_ok=True)
    ys, xs = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    for frame in range(first, last + 1):
        shift = frame - first
        rgb = [(xs + shift) / WIDTH, ys / HEIGHT, 0.25 + 0.5 * ((xs + ys + shift) % 7) / 7]
        pixels = np.stack([*(gain * c for c in rgb), np.ones_like(xs)], axis=-1)
        spec = oiio.ImageSpec(WIDTH, HEIGHT, 4, "float")
        spec.channelnames = ("R", "G", "B", "A")
        spec.attribute("PixelAspectRatio", PIXEL_ASPECT)
        spec.attribute("compression", "zip")
        out = oiio.ImageOutput.create(str(folder / f"plate.{frame:04d}.exr"))
        assert out.open(str(folder / f"plate.{frame:04d}.exr"), spec)
        out.write_image(pixels)
        out.close()
    return str(folder / "plate.####.exr")


def srgb_encode(linear: np.ndarray) -> np.ndarray:
    """The sRGB encoding (IEC 61966-2-1) of scene-linear values: what the node hands the models."""
    linear = np.clip(linear, 0.0, None)
    return np.where(linear <= 0.0031308, 12.92 * linear, 1.055 * linear ** (1 / 2.4) - 0.055)


def read_exr(path: str | Path) -> tuple[dict[str, np.ndarray], oiio.ImageSpec]:
    inp = oiio.ImageInput.open(str(path))
    assert inp is not None, oiio.geterror()
    spec = inp.spec()
    pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
    inp.close()
    return {name: pixels[:, :, i] for i, name in enumerate(spec.channelnames)}, spec


def fresh_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(generator for a fixture) A fresh GUI session: an empty script whose root range is the plate's, with a Read of the plate
    selected, and the cache under tmp_path."""
    monkeypatch.setenv("BUFFERANY_NUKE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("BUFFERANY_SERVER_FILE", str(tmp_path / "no_server.json"))
    state = nuke._reset(FIRST, LAST, nuke.Format(WIDTH, HEIGHT, PIXEL_ASPECT))
    pattern = write_plate(tmp_path / "plate")
    read = nuke.nodes.Read(file=pattern, first=FIRST, last=LAST, origfirst=FIRST, origlast=LAST)
    read.setSelected(True)
    yield state
    nuke._drain()  # run what a finished worker left for the main thread
    assert state.violations == [], "nuke API used off the main thread"


def make_node():
    """The node as the menu entry makes it: through menu.py's command, fed by the selected Read."""
    exec(compile((PLUGIN / "menu.py").read_text(), "menu.py", "exec"), {})
    command = nuke.menu("Nodes").items["BufferAnytime"].items["BufferAnytime"]
    before = set(nuke.allNodes())
    exec(command, {"nuke": nuke})
    (group,) = set(nuke.allNodes()) - before
    return group


def write_fake_script(
    path: Path, plate_pattern: str, knobs: dict[str, object], *, name: str = "Buffers"
) -> Path:
    """A script for the fake `nuke.scriptOpen` (which runs Python in place of parsing .nk): a Read of
    the plate feeding a BufferAnytime node with the given knob values."""
    lines = [
        "import bufferany_nuke.node",
        f"read = nuke.nodes.Read(file={plate_pattern!r}, first={FIRST}, last={LAST})",
        f"group = bufferany_nuke.node.build_node({name!r})",
        "group.setInput(0, read)",
        *(f"group[{k!r}].setValue({v!r})" for k, v in knobs.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path
