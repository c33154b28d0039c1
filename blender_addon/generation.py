"""One "generate" run: render the scene if it is the source, run the job on the server, then build the
node group. Advanced by `step()` from the main thread only (the operator's timer, or its blocking
loop in background mode); the network waits happen on the session's worker thread."""

from __future__ import annotations

from typing import Any

import bpy

from . import compositor, properties, sources
from .core import framepaths
from .session import ERROR, JobSession


class Generation:
    def __init__(self, scene: bpy.types.Scene, connect: dict[str, Any]):
        settings = scene.bufferany
        self.scene_name = scene.name
        self.connect = connect
        self.progress = 0.0
        self.message = "starting"
        self.outcome: str | None = None  # FINISHED, FAILED or CANCELLED once over
        self.report: tuple[str, str] | None = None  # (report type, text) for the operator
        self.result: dict[str, Any] | None = None
        self.group: bpy.types.NodeTree | None = None
        self.session: JobSession | None = None
        self.frames_done: list[int] = []  # written or skipped (already finished), as the server reports them
        self.frames_total = 0
        self._cancelled = False
        fields = properties.job_settings(settings)  # checked first: a bad setting fails before a render
        frames = sources.frame_spec(scene, settings)
        self.frame_offset = sources.frame_offset(settings)
        self.render: sources.SceneRender | None = None
        if settings.source == "SCENE":
            folder = sources.absolute(settings.cache_dir, "Cache Folder")
            self.render = sources.SceneRender(scene, scene.frame_start, scene.frame_end, folder)
            source = self.render.pattern
        else:
            source = sources.absolute(settings.filepath, "Frames")
        # every job setting that is not left at its default, then what the add-on decides itself
        self.job: dict[str, Any] = {name: value for name, value in fields.items() if value is not None}
        self.job.update(
            input=source,
            include_plate=True,  # the group's Image output, aligned with the passes
            # a scene render replaces the cache's frames: passes from the old ones are stale
            overwrite=settings.overwrite or settings.source == "SCENE",
        )
        if frames is not None:
            self.job["frames"] = frames

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    def cancel(self) -> None:
        self._cancelled = True
        if self.session is not None:
            self.session.cancel()

    def abort(self, message: str) -> None:
        """End at once after an unexpected error: stop the job, put the scene's settings back."""
        self.cancel()
        if self.render is not None:
            self.render.close()
        self._end("FAILED", ("ERROR", f"Buffer Anytime: {message}"))

    def step(self) -> bool:
        """Advance as far as possible without waiting; True once over (see `outcome`, `report`)."""
        if self.finished:
            return True
        try:
            if self.render is not None and self.render.done < len(self.render.frames):
                return self._render_step()
            if self.session is None:
                if self._cancelled:
                    return self._end("CANCELLED", ("WARNING", "Buffer Anytime: cancelled"))
                self.message = "waiting for the server"
                self.session = JobSession(self.job, self.connect).start()
            for event in self.session.poll():
                self._on_event(event)
        except sources.SourceError as exc:
            return self._end("FAILED", ("ERROR", f"Buffer Anytime: {exc}"))
        return self.finished

    def _render_step(self) -> bool:
        if self._cancelled:
            self.render.close()
            return self._end("CANCELLED", ("WARNING", "Buffer Anytime: cancelled while rendering the scene"))
        try:
            done = self.render.step()
        except BaseException:
            self.render.close()
            raise
        total = len(self.render.frames)
        self.progress = 100.0 * self.render.done / total
        self.message = f"rendered scene frame {self.render.done} of {total}"
        if done:
            self.render.close()
            self.progress = 0.0
        return False

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "queued":
            ahead = event.get("jobs_ahead", 0)
            self.message = f"queued ({ahead} job{'s' if ahead != 1 else ''} ahead)" if ahead else "queued"
        elif kind == "started":
            self.frames_total = len(event.get("frames", []))
            self.message = f"generating {self.frames_total} frames"
        elif kind in ("frame_done", "frame_skipped") and isinstance(event.get("frame"), int):
            self.frames_done.append(event["frame"])
        elif kind == "progress":
            self.progress = float(event.get("percent", self.progress))
            self.message = f"generating: frame {event.get('done', 0)} of {event.get('total', 0)}"
        elif kind == "finished":
            self._on_finished(event["result"])
        elif kind == "failed":
            self._end(
                "FAILED", ("ERROR", f"Buffer Anytime: {event['error']} (exit code {event['exit_code']})")
            )
        elif kind == "cancelled":
            self._end("CANCELLED", ("WARNING", f"Buffer Anytime: {event.get('message') or 'cancelled'}"))
        elif kind == ERROR:
            self._end("FAILED", ("ERROR", f"Buffer Anytime: {event['message']}"))

    def _on_finished(self, result: dict[str, Any]) -> None:
        self.result = result
        frames = sorted({*result["frames_written"], *result["frames_skipped"]})
        self.frames_done = frames
        if not frames:
            self._end("FAILED", ("ERROR", "Buffer Anytime: the server rendered no frames"))
            return
        image = compositor.load_sequence(framepaths.frame_path(result["output_pattern"], frames[0]))
        self.group = compositor.build_node_group(image, frames[0], frames[-1], offset=self.frame_offset)
        compositor.add_group_node(bpy.data.scenes[self.scene_name], self.group)
        self.progress = 100.0
        text = f"Buffer Anytime: frames {frames[0]}-{frames[-1]} in node group '{self.group.name}'"
        if self.frame_offset:
            text += f" (on scene frames {frames[0] - self.frame_offset}-{frames[-1] - self.frame_offset})"
        if result.get("untrained"):
            self._end("FINISHED", ("WARNING", text + " (untrained weights: the passes are not meaningful)"))
        else:
            self._end("FINISHED", ("INFO", text))

    def _end(self, outcome: str, report: tuple[str, str]) -> bool:
        self.outcome, self.report = outcome, report
        self.message = report[1]
        return True
