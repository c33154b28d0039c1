"""The render pipeline without the models: frames/s of `run_render` with null models against the best
this machine does with bare OpenImageIO on the same files, in the same run.

    .venv/bin/python benchmarks/bench_pipeline_feed.py [--resolution 1920x1080 --resolution 3840x2160]
        [--frames 64] [--device cpu|cuda] [--json PATH] [--quick]

Plates made here, per resolution: half-float RGBA EXR sequences with ZIP and with PIZ compression, and
a movie (H.264 when OpenCV's FFmpeg can encode it, else MPEG-4 part 2; the codec is in the table's
setup). Rows of each table:
  - bare read + write (the baseline, the bound): a pool of one thread per core, each reading a plate
    frame with OpenImageIO (all four channels, as float) and writing an EXR of the render's channels
    (depth.Z float, N.X/Y/Z half, ZIP) from it, nothing else; movies are decoded by OpenCV in order
    (OpenImageIO here has no movie reader), the writes in the pool;
  - pipeline: `run_render` with the depth and normal passes, the default models' windows, stabiliser
    off, its reader and writer threads (`pipeline.feed`);
  - pipeline, I/O in the loop: the same with `io_threads=False` (reads and writes in the render loop);
  - null models alone: the same null models on the same windows (each depth window with its key
    frames), on frames already in memory: no reading, alignment or writing. Where the cores are all
    busy (a CPU render), their work and the bare read + write add up, so the pipeline's ceiling is
    1 / (1 / bare + 1 / models) frames/s, printed under each table.
The null models do what the real predictors do around the network (the depth model's official resize
to its 518 px input and back, the normal model's antialiased resize to 768 px and back, on the
predictor's device) and nothing in it. The goal: pipeline >= 0.8x the bound.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import OpenImageIO as oiio
import torch
import torch.nn.functional as F
from harness import add_json_option, machine, print_table, table, write_json

from bufferany_core.jobs import RenderJob
from bufferany_core.models.api import ModelInfo, PassName
from bufferany_core.models.catalog import get_model_entry
from bufferany_core.models.depth.preprocess import resize_officially, to_plate_resolution
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.render import plan_render, run_render
from bufferany_core.pipeline.windows import key_positions

OUTPUT_CHANNELS = ("depth.Z", "N.X", "N.Y", "N.Z")
OUTPUT_FORMATS = ("float", "half", "half", "half")


class NullPredictor:
    """A `PassPredictor` with the real one's shapes and its work around the network, without the network."""

    def __init__(self, pass_name: PassName, device: torch.device) -> None:
        entry = get_model_entry(pass_name, None)
        self.info = ModelInfo(
            pass_name=pass_name,
            model_id=f"null-{pass_name}",
            weights_sha256=None,
            untrained=True,
            default_window=entry.schedule.window,
            default_overlap=entry.schedule.overlap,
        )
        self.device = device
        self.precision = "fp32"
        self.size = entry.processing_size

    def predict(self, frames: torch.Tensor) -> torch.Tensor:
        height, width = frames.shape[-2:]
        x = frames.to(self.device, torch.float32)
        if self.info.pass_name == "depth":
            small = resize_officially(x, self.size)
            return to_plate_resolution(small.mean(dim=1, keepdim=True), height, width)
        scale = self.size / max(height, width)
        small = F.interpolate(
            x, size=(round(height * scale), round(width * scale)), mode="bilinear", align_corners=False, antialias=True
        )
        vectors = small - 0.5 + torch.tensor([0.0, 0.0, 1.0], device=self.device).view(1, 3, 1, 1)
        # unit vectors, not F.normalize: its norm across the channel axis costs ten times this sum on the CPU
        # (torch 2.14), and a null model should cost its resizes only
        normals = vectors / vectors.square().sum(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
        # near unit after the bilinear resize; the pipeline renormalises what it writes
        return F.interpolate(normals, size=(height, width), mode="bilinear", align_corners=False)


class NullPredictors(PredictorCache):
    """What `run_render` loads: the null models (the catalogue's entries still plan the windows)."""

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device

    def get(self, pass_name, model, **_settings):  # type: ignore[override]
        return NullPredictor(pass_name, self.device)


def plate_pixels(width: int, height: int, frame: int) -> np.ndarray:
    """A moving gradient with grain: compresses about as a real plate does (noise alone would not)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    grain = np.random.default_rng(frame).normal(0.0, 0.01, (height, width, 1)).astype(np.float32)
    base = np.stack([(x / width + 0.01 * frame) % 1.0, y / height, 0.5 + 0.3 * np.sin(x / 97.0 + frame / 5.0)], axis=-1)
    return np.concatenate([base * 1.5 + grain, np.ones((height, width, 1), np.float32)], axis=-1)


def write_plates(folder: Path, size: tuple[int, int], count: int, compression: str) -> str:
    folder.mkdir(parents=True)
    spec = oiio.ImageSpec(size[0], size[1], 4, "half")
    spec.channelnames = ("R", "G", "B", "A")
    spec.attribute("compression", compression)
    for frame in range(1, count + 1):
        output = oiio.ImageOutput.create("x.exr")
        output.open(str(folder / f"plate.{frame:04d}.exr"), spec)
        output.write_image(plate_pixels(*size, frame))
        output.close()
    return str(folder / "plate.####.exr")


def write_movie(folder: Path, size: tuple[int, int], count: int) -> tuple[str, str]:
    """The plate as a movie, in the best codec OpenCV's FFmpeg encodes here; (path, codec)."""
    folder.mkdir(parents=True)
    for codec, fourcc in (("H.264", "avc1"), ("MPEG-4 part 2", "mp4v")):
        path = folder / "plate.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), 24.0, size)
        if writer.isOpened():
            for frame in range(1, count + 1):
                srgb = np.clip(plate_pixels(*size, frame)[..., 2::-1] / 1.5, 0.0, 1.0)  # BGR
                writer.write((srgb * 255.0 + 0.5).astype(np.uint8))
            writer.release()
            return str(path), codec
        writer.release()
    raise RuntimeError("OpenCV cannot encode a movie here (no H.264 or MPEG-4 encoder)")


def write_outputs(path: str, pixels: np.ndarray) -> None:
    """The render's four channels, written bare: no header work, no temporary file."""
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], 4, "float")
    spec.channelnames = OUTPUT_CHANNELS
    spec.channelformats = tuple(oiio.TypeDesc(t) for t in OUTPUT_FORMATS)
    spec.attribute("compression", "zip")
    output = oiio.ImageOutput.create(path)
    output.open(path, spec)
    output.write_image(pixels)
    output.close()


def bare_sequence(pattern: str, count: int, out: Path) -> float:
    """Seconds to read every plate frame and write its outputs, one thread per core."""

    def one(frame: int) -> None:
        image = oiio.ImageInput.open(pattern.replace("####", f"{frame:04d}"))
        pixels = image.read_image(0, 0, 0, 4, "float")
        image.close()
        write_outputs(str(out / f"bare.{frame:04d}.exr"), pixels)

    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(one, range(1, count + 1)))
    return time.perf_counter() - start


def bare_movie(path: str, count: int, out: Path) -> float:
    """Seconds to decode the movie in order (one decoder) and write each frame's outputs in a pool."""
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    capture = cv2.VideoCapture(path)
    with ThreadPoolExecutor(os.cpu_count()) as pool:
        pending = []
        for frame in range(1, count + 1):
            ok, bgr = capture.read()
            if not ok:
                raise RuntimeError(f"cannot decode frame {frame} of {path}")
            rgba = np.concatenate([bgr, np.full(bgr.shape[:2] + (1,), 255, np.uint8)], axis=-1)
            pending.append(pool.submit(write_outputs, str(out / f"bare.{frame:04d}.exr"), rgba.astype(np.float32)))
        for job in pending:
            job.result()
    capture.release()
    return time.perf_counter() - start


def render_job(source: str, count: int, out: Path, args: argparse.Namespace) -> RenderJob:
    return RenderJob(
        input=source,
        output=str(out / "passes.####.exr"),
        frames=f"1-{count}",
        passes=("depth", "normal"),
        weights="random",  # no weight files looked for: the null models load nothing
        device=args.device,
        stabilize="off",  # the stabiliser's optical flow is a model too
        window=args.window,
        overlap=args.overlap,
        overwrite=True,
    )


def pipeline(source: str, count: int, out: Path, args: argparse.Namespace, *, io_threads: bool) -> float:
    job = render_job(source, count, out, args)
    start = time.perf_counter()
    result = run_render(job, predictors=NullPredictors(torch.device(args.device)), io_threads=io_threads)
    seconds = time.perf_counter() - start
    if len(result.frames_written) != count:
        raise RuntimeError(f"the pipeline wrote {len(result.frames_written)} of {count} frames")
    return seconds


def null_models_alone(source: str, count: int, out: Path, args: argparse.Namespace, size: tuple[int, int]) -> float:
    """Seconds the null models take on the windows the render runs, frames already in memory."""
    plan = plan_render(render_job(source, count, out, args))
    device = torch.device(args.device)
    models = NullPredictors(device)
    runs = [
        (models.get(p, None), len(w.positions) + (len(key_positions(w)) if p == "depth" else 0))
        for p in plan.job.passes
        for w in plan.windows_of(p)
    ]
    frames = torch.rand(max(length for _, length in runs), 3, size[1], size[0]).to(device)
    start = time.perf_counter()
    for model, length in runs:
        model.predict(frames[:length])
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def measure(
    name: str, source: str, count: int, work: Path, args: argparse.Namespace, *, movie: bool, size: tuple[int, int]
) -> dict:
    bare = bare_movie if movie else bare_sequence
    rows: dict[str, list[float]] = {
        "bare read + write (pool)": [], "pipeline": [], "pipeline, I/O in the loop": [], "null models alone": []
    }
    for _ in range(args.repeats):  # interleaved, so a busy moment of the machine hits every row alike
        rows["bare read + write (pool)"].append(bare(source, count, work / "bare"))
        rows["pipeline"].append(pipeline(source, count, work / "threads", args, io_threads=True))
        rows["pipeline, I/O in the loop"].append(pipeline(source, count, work / "loop", args, io_threads=False))
        rows["null models alone"].append(null_models_alone(source, count, work / "models", args, size))
    figures = {row: {"frames_per_second": count / min(seconds)} for row, seconds in rows.items()}
    for row, value in figures.items():
        print(f"{name:36s} {row:28s} {value['frames_per_second']:7.2f} frames/s")
    return figures


def parse_resolution(text: str) -> list[tuple[int, int]]:
    sizes = []
    for part in text.split(","):
        width, _, height = part.lower().partition("x")
        if not (width.isdigit() and height.isdigit()) or int(width) < 16 or int(height) < 16:
            raise argparse.ArgumentTypeError(f"resolution {part!r}: expected WIDTHxHEIGHT, e.g. 1920x1080")
        sizes.append((int(width), int(height)))
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--resolution", type=parse_resolution, action="append", default=None,
                        help="WIDTHxHEIGHT, repeatable or comma-separated (default 1920x1080 and 3840x2160)")
    parser.add_argument("--frames", type=int, default=64, help="frames per plate (default 64: three depth windows)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda[:N] (where the null models run)")
    parser.add_argument("--window", type=int, default=None, help="frames per window (default: the models' 32)")
    parser.add_argument("--overlap", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each row; the best counts")
    parser.add_argument("--formats", default="zip,piz,movie", help="plates to measure: zip, piz, movie")
    parser.add_argument("--quick", action="store_true", help="small plates, few frames, small windows (a smoke run)")
    add_json_option(parser)
    args = parser.parse_args()
    sizes = [size for group in args.resolution for size in group] if args.resolution else [(1920, 1080), (3840, 2160)]
    if args.quick:
        sizes = [(min(w, 480), min(h, 270)) for w, h in sizes[:1]]
        args.frames, args.repeats = min(args.frames, 12), 1
        args.window, args.overlap = args.window or 6, args.overlap if args.overlap is not None else 2
    if args.frames < 2:
        parser.error("--frames must be at least 2")
    formats = args.formats.split(",")
    where = machine(args.device)
    print(f"machine: {where}; load {os.getloadavg()[0]:.1f}; OpenImageIO {oiio.__version__}")
    tables = []
    with tempfile.TemporaryDirectory() as tmp:
        for width, height in sizes:
            for kind in formats:
                work = Path(tmp) / f"{width}x{height}-{kind}"
                if kind == "movie":
                    source, codec = write_movie(work / "plate", (width, height), args.frames)
                    what = f"{codec} movie (8-bit 4:2:0)"
                else:
                    source, what = write_plates(work / "plate", (width, height), args.frames, kind), f"half RGBA EXR, {kind.upper()}"
                name = f"{width}x{height} {what}"
                figures = measure(name, source, args.frames, work, args, movie=kind == "movie", size=(width, height))
                bare_fps = figures["bare read + write (pool)"]["frames_per_second"]
                models_fps = figures["null models alone"]["frames_per_second"]
                ceiling = 1.0 / (1.0 / bare_fps + 1.0 / models_fps)
                windows = f"windows {args.window}/{args.overlap}" if args.window else "the default models' windows"
                tables.append(table(
                    title=f"Pipeline without the models: {name}",
                    setup=(f"{args.frames} frames of {width}x{height} {what}; depth + normal passes with null models on "
                           f"{args.device}, {windows}, stabiliser off; best of {args.repeats}; "
                           f"load {os.getloadavg()[0]:.1f} at the end"),
                    baseline="bare read + write (pool)",
                    metrics={"frames_per_second": "frames/s (wall)"},
                    rows=figures,
                    notes=[
                        "goal: pipeline >= 0.8x the bare bound (same files, same run)",
                        f"with every core busy the null models' work adds to the bare read + write: the pipeline's "
                        f"ceiling is {ceiling:.2f} frames/s ({ceiling / bare_fps:.2f}x)",
                    ],
                ))
                print_table(tables[-1])
                print(tables[-1]["notes"][-1])
                shutil.rmtree(work)
    write_json(args.json, machine=where, tables=tables)


if __name__ == "__main__":
    main()
