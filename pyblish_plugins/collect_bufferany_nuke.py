"""Collect the BufferAnytime nodes of the open Nuke script (host side: `nuke`, standard library and
the BufferAnytime plugin, nuke_plugin/ on NUKE_PATH).

Each node becomes an instance whose plate is the node's plate cache and whose passes are the node's
generated passes, so validation sees exactly what the node shows; missing passes are rendered by the
node itself (its Generate, synchronously) unless the context sets another `render`.
"""

from typing import Any

import pyblish.api

from bufferany_core.errors import BadArgumentsError
from bufferany_core.publish import instances as keys
from bufferany_core.publish.render_missing import register_host_renderer


class CollectBufferanyNuke(pyblish.api.ContextPlugin):
    """One `bufferany.passes` instance per enabled BufferAnytime node (nested Groups included)."""

    order = pyblish.api.CollectorOrder
    hosts = ["nuke"]
    label = "bufferany: BufferAnytime nodes"

    def process(self, context):
        import nuke
        from bufferany_nuke import cache, node, settings

        register_host_renderer("nuke", render_in_nuke)
        for group in nuke.allNodes("Group", recurseGroups=True):
            if not node.is_bufferany_node(group) or group["disable"].value():
                continue
            found = settings.read_settings(group)  # raises naming the node and knob at fault
            entry = cache.entry_for(group, found)
            plate_format = group.input(0).format()
            context.create_instance(
                group.fullName(),
                family=keys.FAMILY,
                families=[keys.FAMILY],
                **{
                    keys.PLATE: entry.plate_pattern,
                    keys.OUTPUT: entry.passes_pattern,
                    keys.FRAME_START: found.first,
                    keys.FRAME_END: found.last,
                    keys.PASSES: list(found.passes),
                    keys.RESOLUTION: [plate_format.width(), plate_format.height()],
                    keys.PIXEL_ASPECT: plate_format.pixelAspect(),
                    keys.RENDER: context.data.get(keys.RENDER, "nuke"),
                    keys.RENDER_JOB: _job_fields(found),
                    "nukeNode": group.fullName(),
                    "source": nuke.root().name(),
                },
            )
            self.log.info(f"{group.fullName()}: frames {found.first}-{found.last} -> {entry.passes_pattern}")


# decided by the instance itself (publish.render_missing.job_for refuses them in renderJob)
_INSTANCE_FIELDS = ("passes", "shot_range")


def _job_fields(found):
    """The node's settings as RenderJob fields, for rendering through the service or the CLI: every
    job knob that is set (the passes are the instance's own)."""
    return {
        name: value for name, value in found.job.items() if name not in _INSTANCE_FIELDS and value is not None
    }


def render_in_nuke(instance: Any, *, overwrite: bool, changes: dict[str, Any]) -> dict[str, Any]:
    """The BufferAnytime node renders its own plate cache and passes (its Generate, synchronously):
    the whole range, `overwrite` through its `force` knob, `changes` on its knobs of the same name."""
    import bufferany_nuke
    import nuke

    group = nuke.toNode(instance.data["nukeNode"])
    if group is None:
        raise BadArgumentsError(
            f"instance {instance.name!r}: node {instance.data['nukeNode']} no longer exists"
        )
    unknown = [name for name in changes if group.knob(name) is None]
    if unknown:
        raise BadArgumentsError(f"{group.fullName()}: no knob {', '.join(unknown)} to change for the render")
    for name, value in changes.items():
        group[name].setValue(value)
    force = group["force"].value()
    group["force"].setValue(force or overwrite)
    try:
        return bufferany_nuke.generate(group, synchronous=True) or {}
    finally:
        group["force"].setValue(force)
