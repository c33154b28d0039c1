"""On-disk cache of optical flows between consecutive sampled frames of a clip.

Flows are computed once per frame pair on the full source frame (DIS) and stored as safetensors,
`<cache>/<clip hash>/<a>_<b>_<source hash>.safetensors` holding `fw` (a -> b on a's grid) and `bw` (b -> a on
b's grid), each (2, H, W) float32. Each sample then crops and rescales them to its own crop
(`crop_flow`), so random crops and scales reuse one computation across epochs and runs. The
source hash covers everything the flow depends on: the two frame files' (or the movie's) size and
modification time, the colour space and the estimator's settings, so a re-rendered clip or another
`data.colorspace` computes fresh flows (the stale files stay, unused). Writes
are atomic (temporary file + rename): several loader workers and ranks may share one cache.
"""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

import torch
import torch.nn.functional as F

from bufferany_core.atomic import atomic_write
from bufferany_core.flow import DISFlow, adjacent_flows
from bufferany_core.frames import FrameSequence


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FlowCache:
    def __init__(self, folder: Path, *, colorspace: str = ""):
        self.folder = Path(folder)
        self.colorspace = colorspace  # data.colorspace ("" = by file type)
        self.estimator = DISFlow()

    def _path(self, sequence: FrameSequence, a: int, b: int) -> Path:
        clip = str(sequence.movie or sequence.hash_pattern)
        files = [sequence.movie] if sequence.movie is not None else [sequence.path(a), sequence.path(b)]
        stats = [(f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        source = repr((stats, self.colorspace, self.estimator))  # the dataclass repr names backend and preset
        return self.folder / _digest(clip) / f"{a}_{b}_{_digest(source)}.safetensors"

    def flows(
        self, sequence: FrameSequence, frames: tuple[int, ...], full: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward and backward flows (T-1, 2, H, W) between frames `frames` of `sequence`, whose
        full-resolution sRGB images are `full` (T, 3, H, W); missing pairs are computed and stored."""
        from safetensors.torch import load_file

        forward, backward = [], []
        for k, (a, b) in enumerate(zip(frames[:-1], frames[1:], strict=True)):
            path = self._path(sequence, a, b)
            if path.is_file():
                pair = load_file(str(path))
            else:
                fw, bw = adjacent_flows(full[k : k + 2], self.estimator)
                pair = {"fw": fw[0].contiguous(), "bw": bw[0].contiguous()}
                atomic_write(path, functools.partial(_save, pair))  # raises OutputNotWritableError
            forward.append(pair["fw"])
            backward.append(pair["bw"])
        return torch.stack(forward), torch.stack(backward)


def _save(tensors: dict[str, torch.Tensor], path: Path) -> None:
    from safetensors.torch import save_file

    save_file(tensors, path)


def crop_flow(flow: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int], *, flip: bool) -> torch.Tensor:
    """Flows (N, 2, H, W) of full frames -> the flows of a crop `box` (top, left, height, width)
    resized to `size` (h, w): vectors scale with the resize, and a horizontal flip negates x."""
    top, left, height, width = box
    crop = flow[:, :, top : top + height, left : left + width]
    if crop.shape[-2:] != size:
        crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=False)
        factor = torch.tensor([size[1] / width, size[0] / height], dtype=crop.dtype).view(1, 2, 1, 1)
        crop = crop * factor
    if flip:
        crop = crop.flip(-1) * torch.tensor([-1.0, 1.0], dtype=crop.dtype).view(1, 2, 1, 1)
    return crop.contiguous()

