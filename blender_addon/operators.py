"""Generate (modal with a timer in the UI, blocking in background mode), Cancel, and the model list
(refresh it, pick a name from it)."""

from __future__ import annotations

import time

import bpy

from . import models, preferences, sources
from .generation import Generation

POLL_SECONDS = 0.1
_active: Generation | None = None  # the run in progress (one at a time per Blender session)


def active() -> Generation | None:
    return _active


def _release() -> None:
    global _active
    _active = None


def frame_ranges(frames) -> str:
    """`[1001, 1002, 1003, 1007]` -> `1001-1003, 1007`."""
    parts: list[str] = []
    ordered = sorted(set(frames))
    start = previous = None
    for frame in [*ordered, None]:
        if start is not None and (frame is None or frame != previous + 1):
            parts.append(str(start) if start == previous else f"{start}-{previous}")
            start = None
        if start is None:
            start = frame
        previous = frame
    return ", ".join(parts)


def _show(context, generation: Generation | None) -> None:
    """Copy the run's state into the window manager's status (what the panel draws)."""
    status = context.window_manager.bufferany_status
    status.running = generation is not None and not generation.finished
    if generation is not None:
        status.progress = generation.progress
        status.message = generation.message
        status.job_id = (generation.session.job_id or "") if generation.session else ""
        status.frames_done = frame_ranges(generation.frames_done)
        status.frames_total = generation.frames_total
        if generation.outcome == "FAILED":
            status.last_error = generation.report[1]
    for window in context.window_manager.windows:
        for area in window.screen.areas:
            if area.type in ("NODE_EDITOR", "PROPERTIES"):
                area.tag_redraw()


class BUFFERANY_OT_generate(bpy.types.Operator):
    """Generate depth and normal passes for the chosen frames and add the "Buffer Anytime" node group"""

    bl_idname = "bufferany.generate"
    bl_label = "Generate Depth and Normals"
    bl_options = {"REGISTER"}

    _timer = None

    @classmethod
    def poll(cls, context):
        return _active is None and context.scene is not None

    def _start(self, context) -> Generation | None:
        global _active
        try:
            connect = preferences.connect_arguments(preferences.get(context))
            _active = Generation(context.scene, connect)
        except (sources.SourceError, ValueError) as exc:
            context.window_manager.bufferany_status.last_error = f"Buffer Anytime: {exc}"
            self.report({"ERROR"}, f"Buffer Anytime: {exc}")
            return None
        context.window_manager.bufferany_status.last_error = ""
        _show(context, _active)
        return _active

    def _finish(self, context, generation: Generation) -> set[str]:
        _release()
        _show(context, generation)
        kind, text = generation.report
        self.report({kind}, text)
        return {"FINISHED"} if generation.outcome == "FINISHED" else {"CANCELLED"}

    def execute(self, context):
        """Blocking: for scripts and background mode, where no timer events arrive."""
        generation = self._start(context)
        if generation is None:
            return {"CANCELLED"}
        try:
            while not generation.step():
                time.sleep(POLL_SECONDS)
        except KeyboardInterrupt:
            generation.abort("interrupted")
            _release()
            raise
        except Exception as exc:  # bpy errors while rendering the scene or building the nodes
            generation.abort(f"{type(exc).__name__}: {exc}")
        return self._finish(context, generation)

    def invoke(self, context, event):
        generation = self._start(context)
        if generation is None:
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(POLL_SECONDS, window=context.window)
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        generation = _active
        if event.type == "ESC" and event.value == "PRESS":
            generation.cancel()
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        try:
            done = generation.step()
        except Exception as exc:  # bpy errors while rendering the scene or building the nodes
            generation.abort(f"{type(exc).__name__}: {exc}")
            done = True
        _show(context, generation)
        if not done:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        return self._finish(context, generation)


class BUFFERANY_OT_cancel(bpy.types.Operator):
    """Stop the running generation (frames already written stay valid)"""

    bl_idname = "bufferany.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context):
        return _active is not None

    def execute(self, context):
        _active.cancel()
        _active.message = "cancelling"
        _show(context, _active)
        return {"FINISHED"}


class BUFFERANY_OT_refresh_models(bpy.types.Operator):
    """Ask the server which models it offers (else list the add-on's model catalogue)"""

    bl_idname = "bufferany.refresh_models"
    bl_label = "Refresh Model List"

    def execute(self, context):
        prefs = preferences.get(context)
        try:
            connect = preferences.connect_arguments(prefs)
        except ValueError:
            connect = None
        if connect is not None:  # a quick question: never start a server for it, never wait long
            connect["timeout"] = min(float(connect.get("timeout", 5.0)), 5.0)
            if "start_server" in connect:
                connect["start_server"] = False
            connect.pop("server_command", None)
        listing = models.refresh(connect)
        if listing is None:
            self.report(
                {"WARNING"}, "Buffer Anytime: the server lists no models and the add-on has no catalogue"
            )
            return {"CANCELLED"}
        counts = ", ".join(f"{len(names)} {name}" for name, names in listing["models"].items())
        self.report({"INFO"}, f"Buffer Anytime: {counts} models from the {listing['source']}")
        return {"FINISHED"}


class BUFFERANY_OT_set_model(bpy.types.Operator):
    """Use this model"""

    bl_idname = "bufferany.set_model"
    bl_label = "Set Model"
    bl_options = {"INTERNAL", "UNDO"}

    field: bpy.props.StringProperty()
    model: bpy.props.StringProperty()

    def execute(self, context):
        if self.field not in models.model_fields():
            self.report({"ERROR"}, f"Buffer Anytime: {self.field!r} is not a model setting")
            return {"CANCELLED"}
        setattr(context.scene.bufferany, self.field, self.model)
        return {"FINISHED"}


CLASSES = (BUFFERANY_OT_generate, BUFFERANY_OT_cancel, BUFFERANY_OT_refresh_models, BUFFERANY_OT_set_model)
