"""Repair actions offered on failed bufferany validators (pyblish Actions, run from a pyblish UI or
`pyblish.plugin.process(plugin, context, action=Action.id)`).

Rendering goes through `render` (standard library); rewriting files imports the numpy/OIIO side only
when it runs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyblish.api

from bufferany_core.publish import instances as keys
from bufferany_core.publish.render_missing import render_frames


def failed_instances(context: Any, plugin: type) -> Iterator[Any]:
    """Instances on which `plugin` failed in this publish."""
    seen: set[int] = set()
    for result in context.data.get("results", []):
        instance = result.get("instance")
        if result.get("error") is None or instance is None or id(instance) in seen:
            continue
        if result["plugin"].__name__ == plugin.__name__:
            seen.add(id(instance))
            yield instance


class RenderMissingFrames(pyblish.api.Action):
    """Render the frames missing from the passes sequence with the instance's `render` method."""

    label = "Render missing frames"
    on = "failed"
    icon = "refresh"

    def process(self, context: Any, plugin: type) -> None:
        for instance in failed_instances(context, plugin):
            frames = keys.missing_frames(instance)
            if frames:
                self.log.info(f"{instance.name}: rendering {len(frames)} missing frame(s)")
                render_frames(instance, frames, log=self.log)


class RerenderFailedFrames(pyblish.api.Action):
    """Render again, over the existing files, the frames the validator failed on."""

    label = "Re-render failed frames"
    on = "failed"
    icon = "refresh"

    def process(self, context: Any, plugin: type) -> None:
        for instance in failed_instances(context, plugin):
            frames = instance.data.get(keys.FAILED_FRAMES, {}).get(plugin.__name__, [])
            if frames:
                self.log.info(f"{instance.name}: re-rendering frame(s) {frames}")
                render_frames(instance, frames, overwrite=True, log=self.log)


class RerenderStabilized(pyblish.api.Action):
    """Render the whole range again with the optical-flow stabiliser as a final stage."""

    label = "Re-render with the stabiliser"
    on = "failed"
    icon = "film"

    def process(self, context: Any, plugin: type) -> None:
        for instance in failed_instances(context, plugin):
            self.log.info(f"{instance.name}: re-rendering every frame with the stabiliser")
            frames = keys.frame_range(instance)
            render_frames(instance, frames, overwrite=True, changes={"stabilize": "on"}, log=self.log)


class RewriteLossless(pyblish.api.Action):
    """Rewrite lossy-compressed passes files with lossless ZIP compression (the lossy error stays in
    the pixels: re-render for exact values)."""

    label = "Rewrite with lossless compression"
    on = "failed"
    icon = "compress"

    def process(self, context: Any, plugin: type) -> None:
        from bufferany_core.publish.repair import rewrite_lossless  # noqa: PLC0415  (numpy/OIIO)

        for instance in failed_instances(context, plugin):
            for frame in instance.data.get(keys.FAILED_FRAMES, {}).get(plugin.__name__, []):
                path = keys.frame_path(instance.data[keys.OUTPUT], frame)
                rewrite_lossless(path)
                self.log.info(f"{instance.name}: rewrote {path} with lossless compression")
