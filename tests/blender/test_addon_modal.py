"""The Generate operator as the UI runs it (invoke, then its modal handler on timer events), with a
real server: progress, frames done, Esc to cancel, errors; the panel's status rows; the model list.

Headless Blender sends no timer events and has no window, so the tests call the operator's own
`invoke` and `modal` with a window manager that records timers and modal handlers, and feed
synthetic TIMER and ESC events, as Blender's event loop would."""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import bpy
import pytest
from addon_support import PLATE, REPO, TINY_MODELS, addon_on_server, reset_scene, serve

pytestmark = [pytest.mark.blender, pytest.mark.slow]

TIMER = SimpleNamespace(type="TIMER", value="NOTHING")
ESC = SimpleNamespace(type="ESC", value="PRESS")
MOUSE = SimpleNamespace(type="MOUSEMOVE", value="NOTHING")


server = pytest.fixture(scope="module")(serve)
addon = pytest.fixture(scope="module")(addon_on_server)


class WindowManager:
    """The window manager's part the operator uses, recording timers and modal handlers; the status
    is the real one (what the panel draws)."""

    def __init__(self):
        self.bufferany_status = bpy.context.window_manager.bufferany_status
        self.windows = []
        self.timers, self.handlers = [], []

    def event_timer_add(self, step, window=None):
        timer = SimpleNamespace(step=step)
        self.timers.append(timer)
        return timer

    def event_timer_remove(self, timer):
        self.timers.remove(timer)

    def modal_handler_add(self, operator):
        self.handlers.append(operator)


def operator(addon):
    """An object that runs the registered operator's own methods, reports recorded."""
    cls = addon.operators.BUFFERANY_OT_generate
    methods = {name: getattr(cls, name) for name in ("invoke", "modal", "_start", "_finish", "execute")}
    driver = type("GenerateDriver", (), {**methods, "_timer": None})()
    driver.reports = []
    driver.report = lambda kind, text: driver.reports.append((next(iter(kind)), text))
    return driver


def context():
    return SimpleNamespace(
        scene=bpy.context.scene,
        window_manager=WindowManager(),
        window=None,
        preferences=bpy.context.preferences,
    )


def run_modal(op, ctx, *, events=(), timeout=120.0):
    """Invoke, then feed `events` and TIMER events until the operator ends; returns (result, the
    statuses seen while it ran)."""
    assert op.invoke(ctx, TIMER) == {"RUNNING_MODAL"}
    assert ctx.window_manager.handlers == [op] and len(ctx.window_manager.timers) == 1
    status = ctx.window_manager.bufferany_status
    seen = []
    pending = list(events)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = pending.pop(0) if pending else TIMER
        result = op.modal(ctx, event)
        if event is MOUSE:
            assert result == {"PASS_THROUGH"}  # other events reach the UI
        seen.append((status.running, status.progress, status.message, status.frames_done))
        if result != {"PASS_THROUGH"}:
            assert ctx.window_manager.timers == []  # the timer is removed when the run ends
            return result, seen
        time.sleep(0.02)
    pytest.fail("the operator did not end")


def _plate(folder: Path, frames) -> Path:
    for frame in frames:
        shutil.copy(PLATE / f"shot.{frame}.exr", folder / f"shot.{frame}.exr")
    return folder / f"shot.{frames[0]}.exr"


def _settings(**values):
    settings = bpy.context.scene.bufferany
    for key, value in {**TINY_MODELS, "frame_range": "ALL", "source": "FILE", **values}.items():
        setattr(settings, key, value)
    return settings


def test_modal_run_shows_progress_and_the_frames_done(addon, tmp_path):
    reset_scene()
    _settings(filepath=str(_plate(tmp_path, (1005, 1006, 1007))), overwrite=True)
    op, ctx = operator(addon), context()

    result, seen = run_modal(op, ctx, events=[TIMER, MOUSE])

    assert result == {"FINISHED"}, op.reports
    assert any(running for running, *_ in seen)  # the status said "running" while the job ran
    assert any(message.startswith(("queued", "generating", "waiting")) for _, _, message, _ in seen)
    progress = [value for running, value, *_ in seen if running]
    assert progress == sorted(progress)  # progress never goes back
    status = ctx.window_manager.bufferany_status
    assert not status.running and status.progress == 100.0
    assert (status.frames_done, status.frames_total, status.last_error) == ("1005-1007", 3, "")
    assert op.reports[-1][0] == "WARNING" and "untrained weights" in op.reports[-1][1]
    assert bpy.ops.bufferany.generate.poll() and not bpy.ops.bufferany.cancel.poll()


def test_escape_cancels_the_job_on_the_server(addon, tmp_path):
    reset_scene()
    _settings(filepath=str(_plate(tmp_path, (1001, 1002, 1003))), overwrite=True)
    op, ctx = operator(addon), context()

    result, _ = run_modal(op, ctx, events=[TIMER, ESC])  # the first timer sends the job

    assert result == {"CANCELLED"}, op.reports
    assert op.reports[-1][0] == "WARNING" and "cancelled" in op.reports[-1][1]
    status = ctx.window_manager.bufferany_status
    assert not status.running and status.last_error == ""
    assert addon.operators.active() is None  # ready for the next run


def test_a_failed_job_shows_the_servers_error(addon, tmp_path):
    reset_scene()
    _settings(filepath=str(tmp_path / "missing.1001.exr"))
    op, ctx = operator(addon), context()

    result, _ = run_modal(op, ctx)

    assert result == {"CANCELLED"}
    kind, text = op.reports[-1]
    assert kind == "ERROR" and "missing.1001.exr" in text and "exit code 3" in text
    status = ctx.window_manager.bufferany_status
    assert status.last_error == text and not status.running
    assert status.frames_done == ""


def test_an_error_inside_blender_ends_the_run_and_is_shown(addon, tmp_path, monkeypatch):
    reset_scene()
    _settings(filepath=str(_plate(tmp_path, (1001,))))
    op, ctx = operator(addon), context()

    def broken(self):
        raise RuntimeError("the node editor went away")

    monkeypatch.setattr(addon.generation.Generation, "step", broken)
    result, _ = run_modal(op, ctx)
    assert result == {"CANCELLED"}
    assert "RuntimeError: the node editor went away" in ctx.window_manager.bufferany_status.last_error
    assert addon.operators.active() is None


def test_bad_settings_fail_at_invoke_and_are_shown(addon):
    reset_scene()
    _settings(filepath="")
    op, ctx = operator(addon), context()
    assert op.invoke(ctx, TIMER) == {"CANCELLED"}
    assert ctx.window_manager.timers == [] and ctx.window_manager.handlers == []
    assert ctx.window_manager.bufferany_status.last_error == "Buffer Anytime: set 'Frames'"


class Layout:
    """Records what is drawn: (kind, text or property) in order."""

    def __init__(self):
        self.drawn = []

    def prop(self, data, name, **kwargs):
        self.drawn.append(("prop", name))

    def label(self, text="", **kwargs):
        self.drawn.append(("label", text))

    def operator(self, idname, text="", **kwargs):
        self.drawn.append(("operator", idname, text))
        return SimpleNamespace()

    def progress(self, text="", **kwargs):
        self.drawn.append(("progress", text))

    def menu(self, idname, **kwargs):
        self.drawn.append(("menu", idname))

    def separator(self, **kwargs):
        pass

    def row(self, **kwargs):
        return self


def test_the_panel_shows_progress_frames_done_and_the_last_error(addon):
    status = SimpleNamespace(
        running=True,
        progress=50.0,
        message="generating: frame 2 of 4",
        frames_done="1001-1002",
        frames_total=4,
        last_error="",
    )
    layout = Layout()
    addon.ui.draw_status(layout, status)
    assert ("progress", "generating: frame 2 of 4") in layout.drawn
    assert ("operator", "bufferany.cancel", "") in layout.drawn
    assert ("label", "Frames done: 1001-1002 (of 4)") in layout.drawn

    status.running, status.last_error = False, "Buffer Anytime: frame 1003 is unreadable (exit code 6)"
    status.message = status.last_error
    layout = Layout()
    addon.ui.draw_status(layout, status)
    assert layout.drawn[0][:2] == ("operator", "bufferany.generate")
    assert ("label", status.last_error) in layout.drawn
    assert [entry for entry in layout.drawn if entry == ("label", status.last_error)] == [
        ("label", status.last_error)
    ]  # shown once, as the error


def test_frame_ranges_are_compact(addon):
    ranges = addon.operators.frame_ranges
    assert ranges([]) == "" and ranges([7]) == "7"
    assert ranges([1003, 1001, 1002, 1007, 1009, 1010]) == "1001-1003, 1007, 1009-1010"


# -- the model list


def _catalogue_file(tmp_path: Path) -> Path:
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import build_blender_addon
    finally:
        sys.path.remove(str(REPO / "scripts"))
    path = tmp_path / "model_catalogue.json"
    path.write_text(json.dumps(build_blender_addon.model_catalogue()))
    return path


def test_the_model_list_comes_from_the_servers_status_when_it_offers_one(addon):
    models = addon.models
    listing = models.from_status({"available_models": {"depth": ["a-depth", 3], "normal": ["a-normal"]}})
    assert listing == {
        "source": "server",
        "models": {"depth": ["a-depth"], "normal": ["a-normal"]},
        "default": {},
    }
    assert models.from_status({"pid": 1}) is None  # today's server status has no list
    assert models.model_fields() == {"depth_model": "depth", "normal_model": "normal"}


def test_the_server_lists_the_models_and_without_it_the_catalogue_is_offered(addon, server, tmp_path, monkeypatch):
    models = addon.models
    monkeypatch.setattr(models, "CATALOGUE_FILE", _catalogue_file(tmp_path))
    models.forget()
    try:
        assert bpy.ops.bufferany.refresh_models() == {"FINISHED"}
        listing = models.found()
        assert listing["source"] == "server"  # the server's status lists its catalogue and defaults
        assert "video-depth-anything-small" in models.names("depth")
        assert listing["default"] == {"depth": "video-depth-anything-small", "normal": "buffer-anytime-normal"}

        listing = models.refresh(None)  # no server to ask: the catalogue the build copied
        assert listing["source"] == "catalogue"
        assert "video-depth-anything-small" in models.names("depth")
        assert "buffer-anytime-normal" in models.names("normal")
        assert listing["default"]["depth"] in models.names("depth")

        layout = Layout()
        menu = getattr(bpy.types, addon.ui.menu_name("depth_model"))
        menu.draw(SimpleNamespace(layout=layout), bpy.context)
        texts = [entry[2] for entry in layout.drawn if entry[:2] == ("operator", "bufferany.set_model")]
        assert len(texts) == len(models.names("depth")) and any(text.endswith("(default)") for text in texts)
        assert ("label", "Listed by the catalogue") in layout.drawn

        settings = bpy.context.scene.bufferany
        assert bpy.ops.bufferany.set_model(field="depth_model", model="depth-anything-v2-small") == {
            "FINISHED"
        }
        assert settings.depth_model == "depth-anything-v2-small"
        settings.property_unset("depth_model")
    finally:
        models.forget()


def test_the_model_fields_are_drawn_with_their_menus(addon):
    layout = Layout()
    addon.ui.draw_job_settings(layout, bpy.context.scene.bufferany, advanced=False)
    assert ("menu", "BUFFERANY_MT_depth_model") in layout.drawn and (
        "menu",
        "BUFFERANY_MT_normal_model",
    ) in layout.drawn
