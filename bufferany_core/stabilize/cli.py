"""`bufferany-stabilize`: make existing flickery depth / normal passes temporally stable, no training.

Reads the plate (for optical flow) and per-frame depth and/or normal passes (any EXR channels, e.g.
from Nuke's Cattery Depth Anything, or a render's unstabilised passes), runs them through the
render's shot stabiliser (`pipeline.stabilizing.ShotStabilizer`: same flows on square pixels, same
settings, same windows), and writes `depth.Z` and `N.X/Y/Z` in the project's conventions with the
plate's data window and metadata. The selected frames are the shot: stabilising a render's
unstabilised passes writes what the render with `--stabilize on` writes, up to the EXR storage's
rounding. Frames are read, stabilised and written as they come (memory flat in the shot's length).
Prints `Progress: NN%` / `ALF_PROGRESS NN%` and one line per written frame (`Frame N written:
PATH`), all through `cli_support.print_event`; exits with `bufferany_core.errors.ExitCode`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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
from bufferany_core.frames import FrameSequence, read_channels, read_frames, read_info, write_exr
from bufferany_core.frames.framespec import format_frame_spec
from bufferany_core.models.weights import parse_weights_arg
from bufferany_core.pipeline.outputs import check_not_input
from bufferany_core.pipeline.square_pixels import plate_pixel_aspect
from bufferany_core.pipeline.stabilizing import ShotStabilizer, stabilizer_settings
from bufferany_core.pipeline.writer import fingerprint, pass_channels, settings_json, with_depth_range

PROG = "bufferany-stabilize"
# Settings of the recursive filter this command ran before it ran the render's stabiliser: refused
# with a message saying so, rather than argparse's bare "unrecognized arguments".
RETIRED_FLAGS = ("--window", "--overlap", "--decay", "--range-factor", "--trend-frames", "--cycle-tolerance")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG,
        description="Stabilise flickery per-frame depth and/or normal passes along the plate's optical flow "
        "(the stabiliser of bufferany-render --stabilize on, with its settings).",
        epilog="Exit codes: see README.md (2 bad arguments, 3 input not found, 4 missing frames, 7 mixed resolution, ...).",
    )
    p.add_argument("--plate", required=True, help="plate sequence or movie (used for optical flow only)")
    p.add_argument("--depth", help="depth pass sequence (EXR or any OpenImageIO format)")
    p.add_argument("--normal", help="normal pass sequence")
    p.add_argument("-o", "--output", required=True, help="output sequence, e.g. out/shot_stable.####.exr")
    p.add_argument(
        "--frames",
        help="frames to process, stabilised together as one shot: 1001-1100, 1-100x2, 5,10 (default: the plate's range)",
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
        help="what the input depth values mean; kept as they are and recorded in the header "
        f"(default: what the input's header records, else {conventions.DEFAULT_DEPTH_CONVENTION.value})",
    )
    p.add_argument(
        "--flow",
        choices=("auto", *FLOW_NAMES),
        default="auto",
        help="flow backend (auto: RAFT large if its weights are present, else DIS; what a render uses)",
    )
    p.add_argument("--flow-weights", help="RAFT weights file, or random[:SEED] (tests only)")
    p.add_argument("--models-dir", help="folder holding downloaded weights (default: $BUFFERANY_MODELS)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    p.add_argument("--colorspace", help="the plate's colour space (default: by file type)")
    for flag in RETIRED_FLAGS:
        p.add_argument(flag, help=argparse.SUPPRESS)
    return p


@dataclass(frozen=True)
class Inputs:
    plate: FrameSequence
    depth: FrameSequence | None
    normal: FrameSequence | None
    frames: list[int]
    normal_channels: tuple[str, str, str]

    @property
    def passes(self) -> list[str]:
        return [name for name, seq in (("depth", self.depth), ("normal", self.normal)) if seq is not None]


def resolve_inputs(ns: argparse.Namespace) -> Inputs:
    for flag in RETIRED_FLAGS:
        if getattr(ns, flag[2:].replace("-", "_")) is not None:
            raise BadArgumentsError(
                f"{flag}: a setting of the recursive filter {PROG} ran before; it now runs the render's stabiliser "
                f"with its fixed settings (docs/stabilize.md): drop {flag}"
            )
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
    inputs = resolve_inputs(ns)
    device = choose_device(ns.device)
    estimator = load_flow_estimator(
        ns.flow,
        weights=parse_weights_arg(ns.flow_weights),
        models_dir=Path(ns.models_dir) if ns.models_dir else None,
        device=device,
    )
    output = FrameSequence.for_output(ns.output)
    for sequence in (inputs.plate, inputs.depth, inputs.normal):
        if sequence is not None:
            check_not_input(sequence, output, inputs.frames)  # links, `..`, letter case, as a render checks
    try:
        output.folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputNotWritableError(f"cannot create output folder {output.folder}: {exc}") from exc
    frames = inputs.frames
    # the render's stabiliser over the selected frames as the shot; the flow sees the plate with square pixels
    stabilizer = ShotStabilizer(
        len(frames), inputs.passes, estimator, device, pixel_aspect=plate_pixel_aspect(inputs.plate, frames[0])
    )
    header = _header(ns, inputs)
    written = 0
    for position, plate in enumerate(read_frames(inputs.plate, frames, colorspace=ns.colorspace)):
        size = plate.rgb.shape[:2]
        depth = normals = None
        if inputs.depth is not None:
            depth = _read_pass(inputs.depth, plate.number, [ns.depth_channel], size)[..., 0]
        if inputs.normal is not None:
            normals = _read_pass(inputs.normal, plate.number, inputs.normal_channels, size).transpose(2, 0, 1)
        for _, finished, stable_depth, stable_normals in stabilizer.push(position, plate, depth, normals):
            path = output.path(finished.number)
            _write(path, finished.info, stable_depth, stable_normals, header)
            written += 1
            print_event({"type": "frame_done", "frame": finished.number, "path": str(path)})
            print_event({"type": "progress", "percent": 100 * written // len(frames)})
    say(f"Done: {written} frame(s) written ({output.hash_pattern}), flow {estimator.name}")
    return ExitCode.OK


def _write(path: Path, like, depth: np.ndarray | None, normals: np.ndarray | None, header: dict) -> None:
    """Channels as a render writes them (float depth, unit half normals), with this frame's depth range."""
    channels, half = pass_channels(depth=depth, normals=normals)
    write_exr(path, channels, like=like, metadata=with_depth_range(dict(header), channels), half=half)


def _header(ns: argparse.Namespace, inputs: Inputs) -> dict[str, object]:
    """The first pass input's `bufferany/*` keys (a render's provenance: models, weights), updated with
    what this command did. Its settings gain the stabiliser's, as a render records them, and this
    command's name: the numbers equal a stabilised render's only up to the EXR storage's rounding, so a
    render never takes these frames for its own finished ones."""
    frames = inputs.frames
    first = inputs.depth or inputs.normal
    assert first is not None
    source = read_info(first.path(frames[0])).metadata
    header: dict[str, object] = {k: v for k, v in source.items() if k.startswith(conventions.HEADER_PREFIX)}
    header.pop(HEADER.depth_range, None)  # the input frame's, not ours: written per frame
    try:
        values = json.loads(str(source.get(HEADER.settings_values, "{}")))
    except ValueError:
        values = {}
    values = values if isinstance(values, dict) else {}
    values.update(
        stabilized=inputs.passes,
        stabilizer=stabilizer_settings(),
        stabilized_by=PROG,
        stabilized_shot=[frames[0], frames[-1], len(frames)],
    )
    header.update(
        {
            HEADER.version: __version__,
            HEADER.passes: ",".join(inputs.passes),
            HEADER.stabilized: 1,
            HEADER.stabilize_mode: "on",
            HEADER.source: " ".join(str(s.hash_pattern) for s in (inputs.depth, inputs.normal) if s is not None),
            HEADER.frame_range: format_frame_spec(frames),
            HEADER.shot_range: f"{frames[0]}-{frames[-1]}",
            HEADER.settings: fingerprint(values),
            HEADER.settings_values: settings_json(values),
        }
    )
    for pass_name in inputs.passes:
        header[HEADER.pass_stabilized(pass_name)] = 1
        header[HEADER.pass_stabilize_reason(pass_name)] = PROG
    if inputs.depth is not None and ns.depth_convention is not None:
        header[HEADER.depth_convention] = ns.depth_convention
    elif inputs.depth is not None:
        header.setdefault(HEADER.depth_convention, conventions.DEFAULT_DEPTH_CONVENTION.value)
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
