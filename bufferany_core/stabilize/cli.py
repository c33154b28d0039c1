"""`bufferany-stabilize`: make existing flickery depth / normal passes temporally stable, no training.

Reads the plate (for optical flow) and per-frame depth and/or normal passes (any EXR channels, e.g.
from Nuke's Cattery Depth Anything), writes `depth.Z` and `N.X/Y/Z` in the project's conventions
with the plate's data window and metadata. Prints `Progress: NN%` / `ALF_PROGRESS NN%` and one line
per written frame (`Frame N written: PATH`), all through `cli_support.print_event`; exits with
`bufferany_core.errors.ExitCode`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bufferany_core import __version__, conventions
from bufferany_core.cli_support import print_event, run_cli, say
from bufferany_core.conventions import HEADER
from bufferany_core.devices import choose_device
from bufferany_core.errors import (
    BadArgumentsError,
    ExitCode,
    MixedResolutionError,
    NonFiniteError,
    OutputNotWritableError,
)
from bufferany_core.flow.backends import FLOW_NAMES, load_flow_estimator
from bufferany_core.frames import FrameSequence, ImageInfo, read_channels, read_frames, read_info, write_exr
from bufferany_core.frames.framespec import format_frame_spec
from bufferany_core.models.weights import parse_weights_arg
from bufferany_core.stabilize.stabilizer import StabilizeSettings
from bufferany_core.stabilize.windowed import stabilize_in_windows, window_ranges

PROG = "bufferany-stabilize"


def build_parser() -> argparse.ArgumentParser:
    defaults = StabilizeSettings()
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Stabilise flickery per-frame depth and/or normal passes along the plate's optical flow.",
        epilog="Exit codes: see README.md (2 bad arguments, 3 input not found, 4 missing frames, 7 mixed resolution, ...).",
    )
    p.add_argument("--plate", required=True, help="plate sequence or movie (used for optical flow only)")
    p.add_argument("--depth", help="depth pass sequence (EXR or any OpenImageIO format)")
    p.add_argument("--normal", help="normal pass sequence")
    p.add_argument("-o", "--output", required=True, help="output sequence, e.g. out/shot_stable.####.exr")
    p.add_argument(
        "--frames", help="frames to process: 1001-1100, 1-100x2, 5,10 (default: the plate's range)"
    )
    p.add_argument(
        "--depth-channel",
        default=conventions.DEPTH_CHANNEL,
        help="depth input channel (default depth.Z; e.g. Y)",
    )
    p.add_argument(
        "--normal-channels",
        default=",".join(conventions.NORMAL_CHANNELS),
        help="three normal input channels, x,y,z (default N.X,N.Y,N.Z)",
    )
    p.add_argument(
        "--depth-convention",
        choices=[c.value for c in conventions.DepthConvention],
        default=conventions.DEFAULT_DEPTH_CONVENTION.value,
        help="what the input depth values mean; kept as they are and recorded in the header",
    )
    p.add_argument(
        "--flow",
        choices=("auto", *FLOW_NAMES),
        default="auto",
        help="flow backend (auto: RAFT large if its weights are present, else DIS)",
    )
    p.add_argument("--flow-weights", help="RAFT weights file, or random[:SEED] (tests only)")
    p.add_argument("--models-dir", help="folder holding downloaded weights (default: $BUFFERANY_MODELS)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--colorspace", help="the plate's colour space (default: by file type)")
    p.add_argument(
        "--window", type=int, default=48, help="frames stabilised together (memory bound; default 48)"
    )
    p.add_argument("--overlap", type=int, default=8, help="frames shared by consecutive windows (default 8)")
    p.add_argument(
        "--decay",
        type=float,
        default=defaults.decay,
        help=f"history weight per frame (default {defaults.decay})",
    )
    p.add_argument(
        "--range-factor",
        type=float,
        default=defaults.range_factor,
        help="temporal filter gate width, in typical frame-to-frame differences",
    )
    p.add_argument(
        "--trend-frames",
        type=float,
        default=defaults.trend_frames,
        help="frames over which slow depth changes are kept (0: tie all frames to one scale)",
    )
    p.add_argument(
        "--cycle-tolerance",
        type=float,
        default=defaults.cycle_tolerance,
        help="forward-backward flow check, pixels",
    )
    return p


@dataclass(frozen=True)
class Inputs:
    plate: FrameSequence
    depth: FrameSequence | None
    normal: FrameSequence | None
    frames: list[int]
    normal_channels: tuple[str, str, str]


def resolve_inputs(ns: argparse.Namespace) -> Inputs:
    if ns.depth is None and ns.normal is None:
        raise BadArgumentsError("nothing to stabilise: give --depth, --normal or both")
    names = tuple(name.strip() for name in ns.normal_channels.split(","))
    if len(names) != 3 or not all(names):
        raise BadArgumentsError(f"--normal-channels {ns.normal_channels!r}: give three channel names, x,y,z")
    plate = FrameSequence.from_input(ns.plate)
    frames = plate.select(ns.frames)
    if len(frames) < 2:
        raise BadArgumentsError(f"need at least 2 frames to stabilise, got {format_frame_spec(frames)}")
    depth = FrameSequence.from_input(ns.depth) if ns.depth else None
    normal = FrameSequence.from_input(ns.normal) if ns.normal else None
    for name, sequence in (("--depth", depth), ("--normal", normal)):
        if sequence is not None:
            if sequence.is_movie:
                raise BadArgumentsError(
                    f"{name} {sequence.pattern} is a movie: data passes must be image sequences"
                )
            sequence.select(format_frame_spec(frames))  # raises naming the frames the pass lacks
    return Inputs(plate, depth, normal, frames, names)  # type: ignore[arg-type]


def _read_pass(
    sequence: FrameSequence, number: int, names: Sequence[str], size: tuple[int, int]
) -> np.ndarray:
    path = sequence.path(number)
    pixels = read_channels(path, names)  # (H, W, C)
    if pixels.shape[:2] != size:
        raise MixedResolutionError(
            f"frame {number} ({path}) is {pixels.shape[1]}x{pixels.shape[0]} but the plate is {size[1]}x{size[0]}"
        )
    if not np.isfinite(pixels).all():
        count = int((~np.isfinite(pixels).all(axis=2)).sum())
        raise NonFiniteError(f"{path} has {count} pixel(s) with NaN or Inf values in {', '.join(names)}")
    return pixels


def run(ns: argparse.Namespace) -> int:
    try:
        settings = StabilizeSettings(
            decay=ns.decay,
            range_factor=ns.range_factor,
            trend_frames=ns.trend_frames or None,
            cycle_tolerance=ns.cycle_tolerance,
        )
        window_ranges(2, window=ns.window, overlap=ns.overlap)
    except ValueError as exc:
        raise BadArgumentsError(str(exc)) from None
    inputs = resolve_inputs(ns)
    device = choose_device(ns.device)
    estimator = load_flow_estimator(
        ns.flow,
        weights=parse_weights_arg(ns.flow_weights),
        models_dir=Path(ns.models_dir) if ns.models_dir else None,
        device=device,
    )
    output = FrameSequence.for_output(ns.output)
    for name, sequence in (("--plate", inputs.plate), ("--depth", inputs.depth), ("--normal", inputs.normal)):
        if sequence is not None and sequence.hash_pattern == output.hash_pattern:
            raise BadArgumentsError(
                f"output {output.hash_pattern} is the {name} input: write to another sequence"
            )
    try:
        output.folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot create output folder {output.folder}: {exc}") from exc
    frames = inputs.frames
    infos: dict[int, ImageInfo] = {}
    source_headers: dict[str, object] = {}

    def load(span: range) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        numbers = [frames[i] for i in span]
        plates, depths, normals = [], [], []
        for frame in read_frames(inputs.plate, numbers, colorspace=ns.colorspace):
            infos[frame.number] = frame.info
            size = frame.rgb.shape[:2]
            plates.append(frame.rgb)
            if inputs.depth is not None:
                depths.append(_read_pass(inputs.depth, frame.number, [ns.depth_channel], size))
            if inputs.normal is not None:
                normals.append(_read_pass(inputs.normal, frame.number, inputs.normal_channels, size))
        if inputs.depth is not None and not source_headers:
            metadata = read_info(inputs.depth.path(numbers[0])).metadata
            source_headers.update(
                {k: v for k, v in metadata.items() if k.startswith(conventions.HEADER_PREFIX)}
            )

        def stack(images: list[np.ndarray]) -> torch.Tensor | None:
            return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).to(device) if images else None

        return stack(plates), stack(depths), stack(normals)  # type: ignore[return-value]

    passes = tuple(
        name for name, seq in (("depth", inputs.depth), ("normal", inputs.normal)) if seq is not None
    )
    written = 0
    # the flow sees the plate with square pixels, as in a render (movies have square pixels)
    pixel_aspect = 1.0 if inputs.plate.is_movie else read_info(inputs.plate.path(frames[0])).pixel_aspect
    for result in stabilize_in_windows(
        len(frames), load, estimator, window=ns.window, overlap=ns.overlap, settings=settings, pixel_aspect=pixel_aspect
    ):
        number = frames[result.index]
        channels: dict[str, np.ndarray] = {}
        if result.depth is not None:
            channels[conventions.DEPTH_CHANNEL] = result.depth[0].float().cpu().numpy()
        if result.normals is not None:
            for name, component in zip(
                conventions.NORMAL_CHANNELS, result.normals.float().cpu().numpy(), strict=True
            ):
                channels[name] = component
        header = dict(source_headers)
        header.update(_header(ns, inputs, passes))
        half = (
            conventions.NORMAL_CHANNELS
            if result.normals is not None
            and conventions.DEFAULT_NORMAL_PRECISION == conventions.NormalPrecision.HALF
            else ()
        )
        path = output.path(number)
        write_exr(path, channels, like=infos.pop(number), metadata=header, half=half)
        written += 1
        print_event({"type": "frame_done", "frame": number, "path": str(path)})
        print_event({"type": "progress", "percent": 100 * written // len(frames)})
    say(f"Done: {written} frame(s) written ({output.hash_pattern}), flow {estimator.name}")
    return ExitCode.OK


def _header(ns: argparse.Namespace, inputs: Inputs, passes: tuple[str, ...]) -> dict[str, object]:
    header: dict[str, object] = {
        HEADER.version: __version__,
        HEADER.passes: ",".join(passes),
        HEADER.stabilized: 1,
        HEADER.source: " ".join(str(s.hash_pattern) for s in (inputs.depth, inputs.normal) if s is not None),
        HEADER.frame_range: format_frame_spec(inputs.frames),
    }
    if inputs.depth is not None:
        header[HEADER.depth_convention] = ns.depth_convention
    if inputs.normal is not None:
        header[HEADER.normal_space] = conventions.DEFAULT_NORMAL_SPACE.value
        header[HEADER.normal_axes] = conventions.NORMAL_AXES
    return header


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ns = parser.parse_args(argv)
    return run_cli(PROG, lambda: run(ns), parser=parser, interrupted="interrupted; written frames are complete")


if __name__ == "__main__":
    sys.exit(main())
