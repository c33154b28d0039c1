"""Unlabeled training clips: discovery in a folder, deterministic random sampling, loading.

A data folder holds movie files and image sequences (`clip/shot.####.exr`, any depth of folders);
each is one clip. Sample `i` of a run is a pure function of (seed, i): which clip, which frames
(a run of up to `frames` frames at a random stride), which crop (random position and scale, the
training aspect), and a random flip. A resumed run therefore sees exactly the samples it would
have seen, without saving any loader state.

With the DIS backend each sample also carries its optical flows, computed in the loader's worker
processes, either on the crop itself or (with a cache folder) once per frame pair on the full
frame, stored, and cropped per sample.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Sampler

from bufferany_core.errors import BufferanyError, InputNotFoundError
from bufferany_core.flow import DISFlow, adjacent_flows
from bufferany_core.frames import FrameSequence, is_movie_path, read_frames, validate_sequence
from bufferany_training.config import DataSection
from bufferany_training.flow_cache import FlowCache, crop_flow

IMAGE_EXTENSIONS = (".exr", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dpx")


@dataclass(frozen=True)
class Clip:
    sequence: FrameSequence
    frames: tuple[int, ...]
    height: int
    width: int

    @property
    def name(self) -> str:
        return str(self.sequence.movie or self.sequence.hash_pattern)


def discover_clips(root: Path) -> list[Clip]:
    """Every movie file and image sequence under `root`, sorted by path, each checked (frames
    present, one resolution). Raises InputNotFoundError when there is none."""
    root = Path(root).absolute()
    if not root.is_dir():
        raise InputNotFoundError(f"data folder {root} does not exist")
    patterns: dict[str, FrameSequence] = {}
    seen: set[Path] = set()  # files already part of a sequence found earlier
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path in seen or not (is_movie_path(path) or path.suffix.lower() in IMAGE_EXTENSIONS):
            continue
        sequence = FrameSequence.from_input(path)
        if sequence.movie is None:
            seen.update(sequence.path(frame) for frame in sequence.frames)
        patterns.setdefault(str(sequence.movie or sequence.hash_pattern), sequence)
    clips = []
    for _, sequence in sorted(patterns.items()):
        info = validate_sequence(sequence, sequence.frames)
        if len(sequence.frames) >= 2:
            clips.append(Clip(sequence, tuple(sequence.frames), info.height, info.width))
    if not clips:
        raise InputNotFoundError(f"no clips of 2 or more frames (movies or image sequences) under {root}")
    return clips


@dataclass(frozen=True)
class SamplePlan:
    clip: int
    frames: tuple[int, ...]  # frame numbers, in order
    box: tuple[int, int, int, int]  # crop (top, left, height, width) in source pixels
    flip: bool


def plan_sample(index: int, *, seed: int, clips: list[Clip], data: DataSection) -> SamplePlan:
    """Sample `index` of a run seeded `seed`: the same answer in every process, every time."""
    rng = random.Random(int.from_bytes(hashlib.sha256(f"{seed}:{index}".encode()).digest()[:8], "little"))
    clip_index = rng.randrange(len(clips))
    clip = clips[clip_index]
    length = min(data.frames, len(clip.frames))
    strides = [s for s in data.strides if (length - 1) * s < len(clip.frames)] or [1]
    stride = rng.choice(strides)
    start = rng.randrange(len(clip.frames) - (length - 1) * stride)
    frames = clip.frames[start : start + (length - 1) * stride + 1 : stride]
    out_h, out_w = data.size
    fit = min(clip.height / out_h, clip.width / out_w)  # the largest crop with the training aspect
    scale = rng.uniform(*data.scale)
    crop_h = max(1, min(clip.height, round(out_h * fit * scale)))
    crop_w = max(1, min(clip.width, round(out_w * fit * scale)))
    top = rng.randrange(clip.height - crop_h + 1)
    left = rng.randrange(clip.width - crop_w + 1)
    flip = data.flip and rng.random() < 0.5
    return SamplePlan(clip_index, tuple(frames), (top, left, crop_h, crop_w), flip)


def crop_frames(rgb: np.ndarray, plan: SamplePlan, size: tuple[int, int]) -> torch.Tensor:
    """(T, H, W, 3) source frames -> (T, 3, h, w) float32 crops resized to `size` (antialiased)."""
    top, left, height, width = plan.box
    crop = torch.from_numpy(np.ascontiguousarray(rgb[:, top : top + height, left : left + width]))
    crop = crop.permute(0, 3, 1, 2).float()  # (T, 3, hc, wc)
    if crop.shape[-2:] != size:
        crop = F.interpolate(crop, size=size, mode="bilinear", align_corners=False, antialias=True)
    if plan.flip:
        crop = crop.flip(-1)
    return crop.clamp(0.0, 1.0)


class ClipDataset(Dataset):
    """Map-style dataset: item `i` is sample `i` of the run (see `plan_sample`), a dict of
    frames (T, 3, h, w) sRGB in [0, 1], `index`, and with `with_flows` flows_fw / flows_bw
    (T-1, 2, h, w) between consecutive frames at the training resolution."""

    def __init__(self, clips: list[Clip], data: DataSection, *, seed: int, with_flows: bool):
        self.clips = clips
        self.data = data
        self.seed = seed
        self.with_flows = with_flows
        self.cache = FlowCache(Path(data.cache), colorspace=data.colorspace) if data.cache and with_flows else None

    def __len__(self) -> int:
        return 2**62  # samples are indexed by step; the sampler decides which are drawn

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        plan = plan_sample(index, seed=self.seed, clips=self.clips, data=self.data)
        clip = self.clips[plan.clip]
        colorspace = self.data.colorspace or None
        try:
            rgb = np.stack([f.rgb for f in read_frames(clip.sequence, plan.frames, colorspace=colorspace)])
        except BufferanyError as exc:
            raise type(exc)(f"training clip {clip.name}, frames {plan.frames[0]}-{plan.frames[-1]}: {exc}") from exc
        size = (self.data.size[0], self.data.size[1])
        frames = crop_frames(rgb, plan, size)  # (T, 3, h, w)
        item = {"frames": frames, "index": torch.tensor(index)}
        if self.with_flows:
            if self.cache is not None:
                full = torch.from_numpy(rgb).permute(0, 3, 1, 2)  # (T, 3, H, W)
                fw, bw = self.cache.flows(clip.sequence, plan.frames, full)
                item["flows_fw"] = crop_flow(fw, plan.box, size, flip=plan.flip)
                item["flows_bw"] = crop_flow(bw, plan.box, size, flip=plan.flip)
            else:
                item["flows_fw"], item["flows_bw"] = adjacent_flows(frames, DISFlow())
        return item


def collate_clips(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack samples into a batch, cut to the shortest clip (clips shorter than `frames` exist)."""
    length = min(item["frames"].shape[0] for item in items)
    batch = {"index": torch.stack([item["index"] for item in items])}
    for key in ("frames", "flows_fw", "flows_bw"):
        if key in items[0]:
            keep = length if key == "frames" else length - 1
            batch[key] = torch.stack([item[key][:keep] for item in items])
    return batch


class StepSampler(Sampler[int]):
    """Indices for steps `start_step`, `start_step + 1`, ...: step s, rank r draws samples
    (s * world + r) * batch ... + batch - 1, so ranks never share a sample and a resumed run
    continues exactly where it stopped."""

    def __init__(self, *, start_step: int, total_steps: int, batch_size: int, rank: int, world_size: int):
        self.start_step = start_step
        self.total_steps = total_steps
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start_step, self.total_steps):
            first = (step * self.world_size + self.rank) * self.batch_size
            yield from range(first, first + self.batch_size)


def worker_init(_worker_id: int) -> None:
    """One OpenCV and torch thread per loader worker: the workers are the parallelism."""
    import cv2

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
