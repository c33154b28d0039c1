"""End to end: the BufferAnytime node in the fake Nuke against a real `bufferany-server` subprocess on
loopback, with tiny models and random weights."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from nuke_support import (
    FIRST,
    LAST,
    PIXEL_ASPECT,
    fresh_script,
    make_node,
    read_exr,
    srgb_encode,
    write_fake_script,
    write_plate,
)
from service_support import ServerProcess

# isort: split
# (nuke_support has put the fake `nuke` and nuke_plugin/ on sys.path)
import bufferany_nuke
import nuke
from bufferany_nuke import batch, cache, node, settings

from bufferany_core.client import Client

pytestmark = pytest.mark.slow

TINY = {
    "depth_model": "video-depth-anything-tiny",
    "normal_model": "marigold-e2e-ft-normals-tiny",
    "weights": "random",
    "device": "cpu",
    "depth_processing_size": 28,
    "normal_processing_size": 28,
}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nuke_server")
    process = ServerProcess(folder, timeout=60)
    yield process
    process.stop()


@pytest.fixture
def script(tmp_path, monkeypatch, server):
    gen = fresh_script(tmp_path, monkeypatch)
    state = next(gen)
    monkeypatch.setenv("BUFFERANY_SERVER_FILE", str(server.discovery))
    yield state
    next(gen, None)


def _tiny_node():
    group = make_node()
    for name, value in TINY.items():
        group[name].setValue(value)
    return group


def _jobs(server):
    with Client.connect(server.discovery) as client:
        return client.list_jobs()


def _long_job(group, tmp_path):
    """Feed `group` 40 frames, depth only, in windows of 4: a job long enough to stop half-way."""
    pattern = write_plate(tmp_path / "long", FIRST, FIRST + 39)
    group.setInput(0, nuke.nodes.Read(file=pattern, first=FIRST, last=FIRST + 39))
    group["passes"].setValue("depth")
    group["window"].setValue(4)
    group["overlap"].setValue(1)


def _last_job_state(server):
    return _jobs(server)[-1]["state"]


def test_generate_renders_the_plate_runs_the_job_and_merges_the_passes(script, server):
    group = _tiny_node()
    group["generate"].execute()  # the button: returns at once, the job runs on a worker thread
    assert script.executed == [("BufferAnytime1.CacheWrite", FIRST, LAST)]
    assert any(t.name == "bufferany BufferAnytime1" for t in threading.enumerate())
    assert group["status"].value().startswith("submitting frames")  # the UI was never held for the job
    nuke._pump(lambda: group["status"].value().startswith(("done", "error", "cancelled")), timeout=240)
    assert group["status"].value().startswith("done"), group["status"].value()
    assert "UNTRAINED" in group["status"].value()
    assert script.violations == []

    entry = cache.entry_for(group, settings.read_settings(group))
    with group:
        read = nuke.toNode(node.PASSES_READ)
    assert read["file"].value() == entry.passes_pattern
    assert (read["first"].value(), read["last"].value()) == (FIRST, LAST)
    for frame in range(FIRST, LAST + 1):
        plate, plate_spec = read_exr(entry.plate_pattern.replace("####", f"{frame:04d}"))
        assert sorted(plate) == ["B", "G", "R"] and str(plate_spec.format) == "half"
        passes, spec = read_exr(entry.passes_file(frame))
        assert sorted(passes) == ["N.X", "N.Y", "N.Z", "depth.Z"]
        assert (spec.width, spec.height) == (plate_spec.width, plate_spec.height)
        assert spec.get_float_attribute("PixelAspectRatio") == PIXEL_ASPECT
        norm = np.sqrt(sum(passes[c].astype(np.float64) ** 2 for c in ("N.X", "N.Y", "N.Z")))
        assert np.allclose(norm, 1.0, atol=2e-3)  # unit normals (half precision)

    out = nuke._image(group, FIRST + 1)  # the node's output stream: plate + passes, same frame
    passes, _ = read_exr(entry.passes_file(FIRST + 1))
    assert np.array_equal(out.channels["depth.Z"], passes["depth.Z"])
    assert np.array_equal(out.channels["N.Z"], passes["N.Z"])
    assert np.array_equal(
        out.channels["rgba.red"], nuke._image(group.input(0), FIRST + 1).channels["rgba.red"]
    )
    assert out.pixel_aspect == PIXEL_ASPECT

    # the passes match the input (no stale badge), and "auto range" reads the frame's depth range
    # from the header the server wrote: near = the 99th percentile of inverse depth, far = the 1st
    from bufferany_nuke import stale

    assert stale.check(group) is None and read["tile_color"].value() == 0
    nuke.frame(FIRST + 1)
    group["auto_range"].execute()
    depth = passes["depth.Z"].astype(np.float64)
    assert group["near"].value() == pytest.approx(np.percentile(depth, 99), rel=1e-5, abs=1e-6)
    assert group["far"].value() == pytest.approx(np.percentile(depth, 1), rel=1e-5, abs=1e-6)
    assert group["near"].value() > group["far"].value(), group["status"].value()
    nuke.frame(FIRST)

    (task,) = script.tasks
    assert task.history[-1] == 100 and task.history == sorted(task.history)

    # Generate again: unchanged input and settings reuse the passes, no render, no job
    jobs_before = len(_jobs(server))
    group["generate"].execute()
    assert (
        group["status"].value()
        == f"cached: reused passes for frames {FIRST}-{LAST} (UNTRAINED weights: test output)"
    )
    assert len(script.executed) == 1 and len(_jobs(server)) == jobs_before


def test_batch_script_renders_synchronously_and_saves_the_linked_node(script, server, tmp_path, capsys):
    nuke.GUI = False  # `nuke -t bufferany_nuke/batch.py shot.nk --save`
    plate = str(tmp_path / "plate" / "plate.####.exr")
    shot = write_fake_script(tmp_path / "shot.py", plate, {**TINY, "passes": "depth"})
    assert batch.main([str(shot), "--save"]) == 0, capsys.readouterr().err
    assert "Buffers: done: frames 1001-1004" in capsys.readouterr().out
    assert script.main_queue.empty()  # nothing deferred: the node was finished when generate returned
    group = nuke.toNode("Buffers")
    out = nuke._image(group, LAST)
    assert "depth.Z" in out.channels and "N.X" not in out.channels
    ((saved_as, snapshot),) = script.saved
    assert saved_as == str(tmp_path / "shot_bufferany.py")  # a new file: the artist's script is untouched
    passes = snapshot["Buffers.PassesRead"]["file"]
    assert passes.endswith("plate_buffers.####.exr") and not snapshot["Buffers.CopyPasses"]["disable"]
    channels, _ = read_exr(passes.replace("####", f"{LAST:04d}"))
    assert sorted(channels) == ["depth.Z"]


def test_a_failing_job_shows_the_servers_message_on_the_node(script, server):
    group = _tiny_node()
    group["depth_model"].setValue("no-such-model")
    group["generate"].execute()
    nuke._pump(lambda: group["status"].value().startswith(("done", "error", "cancelled")), timeout=120)
    status = group["status"].value()
    assert status.startswith("error:") and "no-such-model" in status, status
    nuke._pump(lambda: bool(script.messages))
    assert "no-such-model" in script.messages[-1]
    with group:
        assert nuke.toNode(node.COPY)["disable"].value()
    assert not entry_marker(group).exists()  # a failed job is never taken for a cached result


def entry_marker(group):
    return cache.entry_for(group, settings.read_settings(group)).marker


def test_passes_follow_the_stream_frame_numbers_under_a_time_offset(script, server):
    """A TimeOffset above the node: the cache holds stream frames 1011-1014 (plate 1001-1004) and the
    passes come back on the same numbers."""
    plate = nuke.toNode("Read1")
    offset = nuke.nodes.TimeOffset(time_offset=10)
    offset.setInput(0, plate)
    group = _tiny_node()
    group.setInput(0, offset)
    group["passes"].setValue("depth")
    group["generate"].execute()
    nuke._pump(lambda: group["status"].value().startswith(("done", "error", "cancelled")), timeout=240)
    assert group["status"].value().startswith("done: frames 1011-1014"), group["status"].value()
    entry = cache.entry_for(group, settings.read_settings(group))
    cached, _ = read_exr(entry.plate_pattern.replace("####", "1012"))
    original, _ = read_exr(str(plate["file"].value()).replace("####", "1002"))
    assert np.allclose(cached["R"], srgb_encode(original["R"]), atol=2e-3)  # sRGB for the models, half
    out = nuke._image(group, 1012)
    passes, _ = read_exr(entry.passes_file(1012))
    assert np.array_equal(out.channels["depth.Z"], passes["depth.Z"])
    assert np.array_equal(out.channels["rgba.red"], original["R"])


def test_progress_cancel_stops_the_job_and_leaves_the_plate_untouched(script, server, tmp_path):
    group = _tiny_node()
    _long_job(group, tmp_path)
    bufferany_nuke.generate(group)
    nuke._pump(lambda: bool(script.tasks) and script.tasks[0].progress > 0, timeout=240)
    script.tasks[0]._cancel()  # the user presses cancel on the progress bar
    nuke._pump(lambda: group["status"].value().startswith(("done", "error", "cancelled")), timeout=120)
    assert group["status"].value().startswith("cancelled"), group["status"].value()
    with group:
        assert nuke.toNode(node.COPY)["disable"].value()  # output is still the plate alone
    assert _last_job_state(server) == "cancelled"

    nuke.GUI = False
    group["cancel"].execute()
    assert group["status"].value() == "nothing to cancel"


def test_cancel_button_stops_the_running_job(script, server, tmp_path):
    group = _tiny_node()
    _long_job(group, tmp_path)
    group["generate"].execute()
    nuke._pump(lambda: "rendering passes" in group["status"].value(), timeout=240)
    group["generate"].execute()  # a second press while the job runs starts nothing
    assert group["status"].value().startswith("already generating")
    assert len(script.executed) == 1
    group["cancel"].execute()
    assert group["status"].value() == "cancelling"
    nuke._pump(lambda: group["status"].value().startswith(("done", "error", "cancelled")), timeout=120)
    assert group["status"].value().startswith("cancelled"), group["status"].value()
    assert _last_job_state(server) == "cancelled"
    assert script.violations == []


def test_server_dying_mid_job_leaves_an_error_on_the_node(tmp_path, monkeypatch):
    """The server process is killed while the node's job runs: the node says so, keeps passing the
    plate through, and can Generate again."""
    (tmp_path / "own_server").mkdir(mode=0o700)  # a discovery folder must be private
    own = ServerProcess(tmp_path / "own_server", timeout=60)
    gen = fresh_script(tmp_path, monkeypatch)
    state = next(gen)
    monkeypatch.setenv("BUFFERANY_SERVER_FILE", str(own.discovery))
    try:
        group = _tiny_node()
        _long_job(group, tmp_path)
        group["generate"].execute()
        nuke._pump(lambda: "rendering passes" in group["status"].value(), timeout=240)
        own.process.kill()
        own.process.wait()
        nuke._pump(lambda: group["status"].value().startswith(("done", "error", "cancelled")), timeout=60)
        status = group["status"].value()
        assert status.startswith("error:") and "server" in status.lower(), status
        with group:
            assert nuke.toNode(node.COPY)["disable"].value()
        group["generate"].execute()  # nothing is stuck: a new Generate runs and finds no server
        nuke._pump(lambda: "error" in group["status"].value(), timeout=60)
        assert "no longer running" in group["status"].value(), group["status"].value()
        assert state.violations == []
    finally:
        own.stop()
        next(gen, None)


def test_a_server_the_node_starts_ignores_nukes_ocio_under_an_aces_config(tmp_path, monkeypatch):
    """Nuke runs with $OCIO naming its config (here the nuke-default stand-in, which has none of the
    server's colour space names). The node converts ACEScg to sRGB itself and starts the server
    without $OCIO: the job succeeds."""
    import shlex

    from service_support import server_command

    folder = tmp_path / "started"
    folder.mkdir(mode=0o700)
    gen = fresh_script(tmp_path, monkeypatch)
    state = next(gen)
    discovery = folder / "server.json"
    monkeypatch.setenv("BUFFERANY_SERVER_FILE", str(discovery))
    command = [*server_command(), "--port", "0", "--device", "cpu", "--allow-root", str(tmp_path)]
    monkeypatch.setenv("BUFFERANY_SERVER_CMD", shlex.join(command))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("OCIO", str(nuke.__file__).replace("nuke.py", "ocio/nuke-default.ocio"))
    nuke.root()["OCIO_config"].setValue("fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1")
    nuke.root()["workingSpaceLUT"].setValue("ACEScg")
    try:
        group = _tiny_node()
        group["passes"].setValue("depth")
        group["start_server"].setValue(True)
        group["server_timeout"].setValue(60)
        nuke.GUI = False
        result = bufferany_nuke.generate(group)
        assert result is not None and group["status"].value().startswith("done"), group["status"].value()
        assert "depth.Z" in nuke._image(group, FIRST).channels
        assert state.violations == []
    finally:
        if discovery.exists():
            with Client.connect(discovery) as client:
                client.shutdown()
        next(gen, None)


def _own_server_env(tmp_path, monkeypatch):
    """$BUFFERANY_SERVER_FILE in a private folder of its own and $BUFFERANY_SERVER_CMD starting a real
    server there; returns the discovery file."""
    import shlex

    from service_support import server_command

    folder = tmp_path / "started"
    folder.mkdir(mode=0o700)
    discovery = folder / "server.json"
    monkeypatch.setenv("BUFFERANY_SERVER_FILE", str(discovery))
    command = [*server_command(), "--port", "0", "--device", "cpu", "--allow-root", str(tmp_path)]
    monkeypatch.setenv("BUFFERANY_SERVER_CMD", shlex.join(command))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return discovery


def _gone(pid, timeout):
    import os
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        try:  # our own child (the fake Nuke started it): reap it
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        time.sleep(0.1)
    return False


def test_batch_stops_the_server_it_started_when_the_task_ends(tmp_path, monkeypatch, capsys):
    """`nuke -t batch.py` with "start server if needed": the server it started gets --idle-exit and is
    shut down when batch.py finishes (discovery file removed, process gone)."""
    import json

    gen = fresh_script(tmp_path, monkeypatch)
    state = next(gen)
    discovery = _own_server_env(tmp_path, monkeypatch)
    try:
        nuke.GUI = False
        plate = str(tmp_path / "plate" / "plate.####.exr")
        knobs = {**TINY, "passes": "depth", "start_server": True, "server_timeout": 60}
        shot = write_fake_script(tmp_path / "shot.py", plate, knobs)
        seen = {}
        original = bufferany_nuke.generate

        def spy(group, **kwargs):
            result = original(group, **kwargs)
            seen.update(json.loads(discovery.read_text()))
            with Client.connect(discovery) as client:
                seen["idle_exit"] = client.status()["idle_exit"]
            return result

        monkeypatch.setattr(batch, "generate", spy)
        assert batch.main([str(shot)]) == 0, capsys.readouterr().err
        out = capsys.readouterr().out
        assert seen["idle_exit"] == settings.DEFAULT_IDLE_EXIT_S  # a batch-started server can never linger
        assert f"stopped the server it started (pid {seen['pid']})" in out, out
        assert not discovery.exists()  # batch.py waited for the server to go
        assert _gone(seen["pid"], 30)
        assert state.violations == []
    finally:
        _stop_if_running(discovery)
        next(gen, None)


def _stop_if_running(discovery):
    import contextlib

    from bufferany_core.errors import ServiceError

    if discovery.exists():
        with contextlib.suppress(ServiceError), Client.connect(discovery) as client:
            client.shutdown()


def test_a_server_started_in_batch_mode_exits_when_idle(tmp_path, monkeypatch):
    """A farm task killed before batch.py could stop its server: the server's --idle-exit ends it."""
    import json

    gen = fresh_script(tmp_path, monkeypatch)
    next(gen)
    discovery = _own_server_env(tmp_path, monkeypatch)
    monkeypatch.setenv(settings.IDLE_EXIT_ENV, "2")
    try:
        group = _tiny_node()
        group["passes"].setValue("depth")
        group["start_server"].setValue(True)
        group["server_timeout"].setValue(60)
        nuke.GUI = False
        assert bufferany_nuke.generate(group) is not None
        pid = json.loads(discovery.read_text())["pid"]
        assert _gone(pid, 30)  # nobody stopped it: it stopped itself
        assert not discovery.exists()
    finally:
        _stop_if_running(discovery)
        next(gen, None)
