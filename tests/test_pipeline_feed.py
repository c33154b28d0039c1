"""Reading ahead of the models and writing behind them (`pipeline.feed`): the same files, events and
errors as a render that reads and writes in its loop; real EXR files through OpenImageIO."""

from __future__ import annotations

import pytest
import torch
from pipeline_plates import TINY, write_plate

from bufferany_core.atomic import atomic_write, confine_outputs, writing_outputs
from bufferany_core.errors import OutputNotWritableError, PartialFailureError, UnreadableImageError
from bufferany_core.frames import FrameSequence, read_channels, read_info
from bufferany_core.jobs import RenderJob
from bufferany_core.pipeline.feed import PlateFeed, WriteBehind
from bufferany_core.pipeline.predictor_cache import PredictorCache
from bufferany_core.pipeline.render import run_render


@pytest.fixture(scope="module")
def predictors():
    return PredictorCache()


def _render(pattern: str, out, predictors, *, io_threads: bool, **extra) -> list[dict]:
    events: list[dict] = []
    job = RenderJob(input=pattern, output=str(out / "o.####.exr"), **{**TINY, **extra})
    run_render(job, on_event=events.append, predictors=predictors, io_threads=io_threads)
    return [e for e in events if e["type"] in ("frame_done", "frame_skipped")]


@pytest.mark.parametrize("extra", [{}, {"frames": "7-12", "shot_range": "1-14", "include_plate": True}],
                         ids=["shot", "chunk-with-plate"])
def test_threads_write_the_same_files_in_the_same_order_as_the_loop(tmp_path, predictors, extra):
    pattern = write_plate(tmp_path / "in", range(1, 15), alpha=True)
    threaded = _render(pattern, tmp_path / "threads", predictors, io_threads=True, **extra)
    serial = _render(pattern, tmp_path / "loop", predictors, io_threads=False, **extra)
    assert [e["frame"] for e in threaded] == [e["frame"] for e in serial]
    assert [e["frame"] for e in threaded] == sorted(e["frame"] for e in threaded)  # shot order
    for event in threaded:
        name = f"o.{event['frame']:04d}.exr"
        info = read_info(tmp_path / "threads" / name)
        assert info.metadata == read_info(tmp_path / "loop" / name).metadata
        channels = list(info.channels)
        assert read_channels(tmp_path / "threads" / name, channels).tobytes() == \
            read_channels(tmp_path / "loop" / name, channels).tobytes()


@pytest.mark.parametrize("io_threads", [True, False])
def test_a_frame_that_fails_to_read_fails_the_render_where_the_loop_would(tmp_path, predictors, io_threads):
    pattern = write_plate(tmp_path / "in", range(1, 13))
    late = tmp_path / "in" / "shot.0011.exr"
    late.write_bytes(late.read_bytes()[: int(late.stat().st_size * 0.7)])  # header intact, pixels cut
    with pytest.raises(PartialFailureError, match=r"shot\.0011\.exr.*frames 1-8 were written"):
        _render(pattern, tmp_path / "out", predictors, io_threads=io_threads, passes=("depth",))
    assert sorted(p.name for p in (tmp_path / "out").glob("*.exr")) == [f"o.{n:04d}.exr" for n in range(1, 9)]


def test_the_feed_hands_frames_in_any_order_and_a_bad_frame_when_it_is_taken(tmp_path):
    pattern = write_plate(tmp_path / "in", range(1, 9))
    bad = tmp_path / "in" / "shot.0006.exr"
    bad.write_bytes(bad.read_bytes()[: int(bad.stat().st_size * 0.7)])
    feed = PlateFeed(sequence=FrameSequence.from_input(pattern), order=[1, 2, 3, 4, 5, 6, 7, 8], colorspace=None,
                     device=torch.device("cpu"), ahead=3, workers=2)
    try:
        assert [feed.take(n).frame.number for n in (1, 3, 2, 5, 4)] == [1, 3, 2, 5, 4]  # 5 asked before its turn
        assert feed.take(1).frame.number == 1  # taken before: read again on this thread
        with pytest.raises(UnreadableImageError, match=r"shot\.0006\.exr"):
            feed.take(6)
    finally:
        feed.close()


def test_the_writer_thread_writes_only_where_the_caller_may(tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()

    def write_to(path):
        def write(text):
            with writing_outputs():
                atomic_write(path, lambda temporary: temporary.write_text(text))
        return write

    done = []
    with confine_outputs([allowed]):
        writer = WriteBehind(depth=2, preparers=2, should_cancel=lambda: False)
        for name, folder in (("a", allowed), ("b", outside), ("c", allowed)):
            writer.submit(prepare=lambda: "frame", write=write_to(folder / f"{name}.txt"),
                          then=lambda name=name: done.append(name))
        writer.close(finish=True)
    with pytest.raises(OutputNotWritableError, match="outside the folders"):
        writer.check()
    assert done == ["a"]  # nothing after the failed write
    assert (allowed / "a.txt").exists() and not outside.exists() and not (allowed / "c.txt").exists()
