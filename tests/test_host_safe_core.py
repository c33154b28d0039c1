"""The parts of bufferany_core the hosts import run on the standard library alone."""

from __future__ import annotations

import pytest
from conftest import run_without_heavy_modules

from bufferany_core import conventions
from bufferany_core.errors import BadArgumentsError, BufferanyError, ExitCode
from bufferany_core.framepaths import frame_path, has_frame_token
from bufferany_core.jobs import RenderJob


def test_host_modules_import_without_heavy_dependencies():
    result = run_without_heavy_modules(
        """
        import bufferany_core, bufferany_core.conventions, bufferany_core.errors, bufferany_core.jobs
        import bufferany_core.atomic, bufferany_core.cli_support, bufferany_core.framepaths
        try:
            import numpy
        except ImportError:
            print("blocked")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "blocked"


def test_exit_codes_are_distinct():
    codes = [int(c) for c in ExitCode]
    assert len(codes) == len(set(codes))
    subclasses = BufferanyError.__subclasses__()
    assert len({cls.exit_code for cls in subclasses}) == len(subclasses)


def test_data_channels_are_never_named_rgb():
    names = [conventions.DEPTH_CHANNEL, *conventions.NORMAL_CHANNELS]
    assert all(name.rsplit(".", 1)[-1] not in ("R", "G", "B") for name in names)
    assert conventions.normal_channels("Nc") == ("Nc.X", "Nc.Y", "Nc.Z")
    with pytest.raises(ValueError, match="layer name"):
        conventions.depth_channel("a.b")


def test_render_job_round_trips_and_rejects_bad_fields():
    job = RenderJob(input="/shots/a.####.exr", frames="1001-1010", passes=("depth",))
    assert RenderJob.from_dict(job.to_dict()) == job
    with pytest.raises(BadArgumentsError, match="unknown job field"):
        RenderJob.from_dict({"input": "x", "bogus": 1})
    with pytest.raises(BadArgumentsError, match="passes"):
        RenderJob(input="x", passes=("albedo",))


def test_frame_path_formats_both_pattern_styles():
    assert frame_path("/x/shot_buffers.%04d.exr", 7) == "/x/shot_buffers.0007.exr"
    assert frame_path("/x/shot_buffers.####.exr", 1001) == "/x/shot_buffers.1001.exr"
    assert frame_path("/x/shot.%d.exr", 7) == "/x/shot.7.exr"
    assert frame_path("/x/shot.##.exr", 1001) == "/x/shot.1001.exr"
    assert frame_path("/x/shot.####.exr", -1) == "/x/shot.-001.exr"  # printf's padding after the sign
    assert frame_path("/x/v#/shot.####.exr", 3) == "/x/v3/shot.####.exr"  # the first token only
    assert has_frame_token("a.%04d.exr") and not has_frame_token("a.exr")
    with pytest.raises(BadArgumentsError, match="no frame number token"):
        frame_path("/x/shot_buffers.exr", 1)
