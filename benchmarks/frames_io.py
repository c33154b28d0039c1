"""Cost of the frame layer over bare OpenImageIO, on plates made here (half RGBA EXR, 1920x1080 and
3840x2160, ZIP and PIZ) and on a real movie clip.

Reading: `read_frames` (R, G, B by name, NaN check, OCIO scene-linear -> sRGB, clip: model-ready
float32) against bare `ImageInput.read_image` of R, G, B from the same files, as half (the least
work OpenImageIO can do: "bare read", the baseline) and as float. Both use OpenImageIO's own
threads (its `threads` attribute: one per core) for decompression. "per-frame colorconvert" is the path `read_frames` took
before issue 24 (float read, ImageBuf + ImageBufAlgo.colorconvert per frame, clip), measured again
here. Writing: `write_exr` (depth float + normals half, plate metadata, temp file + fsync + rename)
against a bare `ImageOutput` write of the same channels. Every figure is the best of --repeats passes
over all frames, variants interleaved so that other load on the machine hits all alike: wall time,
and the process's CPU time (all threads), which other jobs on a shared machine inflate far less.

    .venv/bin/python benchmarks/frames_io.py [--frames 8] [--repeats 3] [--sizes 1920x1080 3840x2160]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
from harness import add_json_option, cpu_model, print_table, table, write_json

from bufferany_core.frames import FrameSequence, MovieReader, read_frames, read_info, read_rgb, write_exr

MOVIE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real" / "davis_rollercoaster.mp4"
MS = {"ms_per_frame": "ms/frame (wall)", "cpu_ms_per_frame": "CPU ms/frame (all threads)"}


def make_plates(folder: Path, count: int, width: int, height: int, compression: str) -> FrameSequence:
    rng = np.random.default_rng(0)
    spec = oiio.ImageSpec(width, height, 4, "half")
    spec.channelnames = ("R", "G", "B", "A")
    spec.attribute("compression", compression)
    spec.attribute("smpte:TimeCode", oiio.TypeDesc("timecode"), (0x01000000, 0))
    for frame in range(1, count + 1):
        pixels = rng.random((height, width, 4), dtype=np.float32) * 2.0
        output = oiio.ImageOutput.create("x.exr")
        output.open(str(folder / f"plate.{frame:04d}.exr"), spec)
        output.write_image(pixels)
        output.close()
    return FrameSequence.from_input(folder / "plate.####.exr")


def best_times(runs: dict[str, Callable[[], None]], repeats: int, frames: int) -> dict[str, dict[str, float]]:
    """Wall and CPU ms/frame of each run: the best of `repeats` interleaved passes of each."""
    wall = dict.fromkeys(runs, float("inf"))
    cpu = dict.fromkeys(runs, float("inf"))
    for _ in range(repeats):
        for name, run in runs.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            wall[name] = min(wall[name], time.perf_counter() - start)
            cpu[name] = min(cpu[name], time.process_time() - start_cpu)
    return {
        name: {"ms_per_frame": wall[name] / frames * 1000, "cpu_ms_per_frame": cpu[name] / frames * 1000}
        for name in runs
    }


def per_frame_colorconvert(path: Path) -> np.ndarray:
    """The read path before issue 24: float pixels, NaN check, a new ImageBuf and colorconvert per
    frame (OpenImageIO's own processor cache), clip."""
    rgb, _ = read_rgb(path)
    assert np.isfinite(rgb).all()
    buffer = oiio.ImageBuf(rgb)
    oiio.ImageBufAlgo.colorconvert(buffer, buffer, "lin_rec709", "srgb_tx")
    return np.clip(buffer.get_pixels(oiio.FLOAT), 0.0, 1.0)


def read_table(sequence: FrameSequence, frames: list[int], repeats: int, where: str) -> dict:
    paths = [sequence.path(frame) for frame in frames]

    def bare(fmt: str) -> Callable[[], None]:
        def run() -> None:
            for path in paths:
                image = oiio.ImageInput.open(str(path))
                image.read_image(0, 0, 0, 3, fmt)
                image.close()

        return run

    def layer(colorspace: str | None) -> Callable[[], None]:
        return lambda: [None for _ in read_frames(sequence, frames, colorspace=colorspace)]

    bare("half")()  # the page cache holds the files for every variant
    rows = best_times(
        {
            "bare read": bare("half"),
            "bare read (float)": bare("float"),
            "read_frames": layer(None),
            "read_frames ACEScg": layer("ACEScg"),
            "per-frame colorconvert": lambda: [per_frame_colorconvert(path) for path in paths],
        },
        repeats,
        len(frames),
    )
    return table(
        title=f"EXR read, {where}: read_frames vs bare OpenImageIO",
        setup=(
            f"{len(frames)} frames of {where} half RGBA plates, best of {repeats} passes; bare read: "
            f"ImageInput.read_image of R, G, B with OpenImageIO's {oiio.get_int_attribute('threads')} "
            "threads; read_frames adds the NaN check, OCIO lin_rec709 (a table of every half value: "
            "the transform is per channel) or ACEScg (a 3x3 matrix: OCIO in place, threaded) -> sRGB "
            "and the clip; per-frame colorconvert: the path before issue 24"
        ),
        baseline="bare read",
        metrics=MS,
        rows=rows,
    )


def write_table(folder: Path, info, frames: list[int], repeats: int, where: str) -> dict:
    depth = np.random.default_rng(1).random((info.height, info.width), dtype=np.float32)
    channels = {"depth.Z": depth, "N.X": depth, "N.Y": depth, "N.Z": depth}
    data = np.stack(list(channels.values()), axis=-1)

    def bare_write() -> None:
        spec = oiio.ImageSpec(info.width, info.height, 4, "float")
        spec.channelnames = tuple(channels)
        spec.channelformats = tuple(oiio.TypeDesc(t) for t in ("float", "half", "half", "half"))
        spec.attribute("compression", "zip")
        for frame in frames:
            output = oiio.ImageOutput.create("x.exr")
            output.open(str(folder / f"bare.{frame:04d}.exr"), spec)
            output.write_image(data)
            output.close()

    def layer_write() -> None:
        for frame in frames:
            write_exr(folder / f"out.{frame:04d}.exr", channels, like=info, half=["N.X", "N.Y", "N.Z"])

    return table(
        title=f"EXR write, {where}: write_exr vs bare OpenImageIO",
        setup=(
            f"{len(frames)} frames, best of {repeats} passes; depth float + normals half, zip; write_exr "
            "adds the plate's metadata and temp file + fsync + rename"
        ),
        baseline="bare write",
        metrics=MS,
        rows=best_times({"bare write": bare_write, "write_exr": layer_write}, repeats, len(frames)),
    )


def movie_table(frames: int, repeats: int) -> dict:
    numbers = list(range(1, frames + 1))
    sequence = FrameSequence.from_input(MOVIE)

    def bare_decode() -> None:
        capture = cv2.VideoCapture(str(MOVIE))
        for _ in numbers:
            capture.read()
        capture.release()

    def before() -> None:  # float codes / 255, then a clipped copy (no transform for sRGB movies)
        with MovieReader(MOVIE) as reader:
            for number in numbers:
                np.clip(reader.read(number), 0.0, 1.0)

    rows = best_times(
        {
            "bare decode (OpenCV)": bare_decode,
            "read_frames (movie)": lambda: [None for _ in read_frames(sequence, numbers)],
            "float + clip (before)": before,
        },
        repeats,
        frames,
    )
    return table(
        title="Movie read: read_frames vs bare OpenCV decode",
        setup=(
            f"first {frames} frames of {MOVIE.name} (H.264, 960x540), best of {repeats} passes; "
            "read_frames: 8-bit codes -> sRGB float32 by a table of the 256 codes"
        ),
        baseline="bare decode (OpenCV)",
        metrics=MS,
        rows=rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", default=["1920x1080", "3840x2160"], metavar="WxH")
    parser.add_argument("--compressions", nargs="+", default=["zip", "piz"])
    add_json_option(parser)
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    tables = []
    for size in args.sizes:
        width, height = (int(part) for part in size.split("x"))
        for number, compression in enumerate(args.compressions):
            with tempfile.TemporaryDirectory() as folder_name:
                folder = Path(folder_name)
                sequence = make_plates(folder, args.frames, width, height, compression)
                frames = sequence.select(None)
                where = f"{width}x{height} {compression}"
                tables.append(read_table(sequence, frames, args.repeats, where))
                if number == 0:  # outputs are zip whatever the plate: one write table per size
                    info = read_info(sequence.path(frames[0]))
                    tables.append(write_table(folder, info, frames, args.repeats, f"{width}x{height}"))
    if MOVIE.is_file():
        tables.append(movie_table(args.frames, args.repeats))
    load = f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    where = f"{cpu_model()}, {os.cpu_count()} CPUs ({load}), OpenImageIO {oiio.__version__}"
    print(f"machine: {where}")
    for figures in tables:
        figures["notes"].append(load)
        print(f"\n{figures['title']}\n  {figures['setup']}")
        print_table(figures)
    write_json(args.json, machine=where, tables=tables)


if __name__ == "__main__":
    main()
