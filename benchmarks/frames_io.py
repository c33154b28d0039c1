"""Cost of the frame layer over bare OpenImageIO, on plates made here (1920x1080 half RGBA, zip).

Reading: `read_frames` (RGB by name, NaN check, OCIO scene-linear -> sRGB, clip) against a bare
`ImageInput.read_image` of the same files. Writing: `write_exr` (depth float + normals half, plate
metadata, temp file + fsync + rename) against a bare `ImageOutput` write of the same channels.

    .venv/bin/python benchmarks/frames_io.py [--frames 8]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import OpenImageIO as oiio
from harness import add_json_option, cpu_model, table, write_json

from bufferany_core.frames import FrameSequence, read_frames, read_info, write_exr

WIDTH, HEIGHT = 1920, 1080


def make_plates(folder: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    spec = oiio.ImageSpec(WIDTH, HEIGHT, 4, "half")
    spec.channelnames = ("R", "G", "B", "A")
    spec.attribute("compression", "zip")
    spec.attribute("smpte:TimeCode", oiio.TypeDesc("timecode"), (0x01000000, 0))
    for frame in range(1, count + 1):
        pixels = rng.random((HEIGHT, WIDTH, 4), dtype=np.float32) * 2.0
        output = oiio.ImageOutput.create("x.exr")
        output.open(str(folder / f"plate.{frame:04d}.exr"), spec)
        output.write_image(pixels)
        output.close()


def timed(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=8)
    add_json_option(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder_name:
        folder = Path(folder_name)
        make_plates(folder, args.frames)
        sequence = FrameSequence.from_input(folder / "plate.####.exr")
        frames = sequence.select(None)

        def bare_read() -> None:
            for frame in frames:
                image = oiio.ImageInput.open(str(sequence.path(frame)))
                image.read_image(0, 0, 0, 3, "float")
                image.close()

        def layer_read() -> None:
            for _ in read_frames(sequence, frames):
                pass

        info = read_info(sequence.path(1))
        depth = np.random.default_rng(1).random((HEIGHT, WIDTH), dtype=np.float32)
        channels = {"depth.Z": depth, "N.X": depth, "N.Y": depth, "N.Z": depth}

        def bare_write() -> None:
            spec = oiio.ImageSpec(WIDTH, HEIGHT, 4, "float")
            spec.channelnames = tuple(channels)
            spec.channelformats = tuple(oiio.TypeDesc(t) for t in ("float", "half", "half", "half"))
            spec.attribute("compression", "zip")
            data = np.stack(list(channels.values()), axis=-1)
            for frame in frames:
                output = oiio.ImageOutput.create("x.exr")
                output.open(str(folder / f"bare.{frame:04d}.exr"), spec)
                output.write_image(data)
                output.close()

        def layer_write() -> None:
            for frame in frames:
                write_exr(folder / f"out.{frame:04d}.exr", channels, like=info, half=["N.X", "N.Y", "N.Z"])

        bare_read()  # warm the page cache for both readers
        results = {
            name: timed(run)
            for name, run in (
                ("bare read", bare_read),
                ("read_frames", layer_read),
                ("bare write", bare_write),
                ("write_exr", layer_write),
            )
        }
    where = f"{cpu_model()}, {os.cpu_count()} CPUs, OpenImageIO {oiio.__version__}"
    print(f"machine: {where}; {args.frames} frames of {WIDTH}x{HEIGHT}")
    for name, seconds in results.items():
        print(f"{name:12s} {seconds / len(frames) * 1000:7.1f} ms/frame")
    print(f"read_frames / bare read = {results['read_frames'] / results['bare read']:.2f}")
    print(f"write_exr / bare write  = {results['write_exr'] / results['bare write']:.2f}")
    per_frame = {name: {"ms_per_frame": seconds / len(frames) * 1000} for name, seconds in results.items()}
    setup = (
        f"{args.frames} frames of {WIDTH}x{HEIGHT}, half RGBA zip plates; read_frames adds the NaN check and "
        "OCIO scene-linear -> sRGB; writes: depth float + normals half, write_exr adds the plate's metadata "
        "and temp file + fsync + rename"
    )
    write_json(
        args.json,
        machine=where,
        tables=[
            table(
                title=f"EXR {kind}: frame layer vs bare OpenImageIO",
                setup=setup,
                baseline=bare,
                metrics={"ms_per_frame": "ms/frame (wall)"},
                rows={bare: per_frame[bare], layer: per_frame[layer]},
            )
            for kind, bare, layer in (
                ("read", "bare read", "read_frames"),
                ("write", "bare write", "write_exr"),
            )
        ],
    )


if __name__ == "__main__":
    main()
