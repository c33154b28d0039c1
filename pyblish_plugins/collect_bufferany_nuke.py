"""Collect the BufferAnytime nodes of the open Nuke script (host side: `nuke`, standard library and
the BufferAnytime plugin, nuke_plugin/ on NUKE_PATH).

Each node becomes an instance whose plate is the node's plate cache and whose passes are the node's
generated passes, so validation sees exactly what the node shows; missing passes are rendered by the
node itself (its Generate, synchronously) unless the context sets another `render`.
"""

import pyblish.api

from bufferany_core.publish import instances as keys


class CollectBufferanyNuke(pyblish.api.ContextPlugin):
    """One `bufferany.passes` instance per enabled BufferAnytime node (nested Groups included)."""

    order = pyblish.api.CollectorOrder
    hosts = ["nuke"]
    label = "bufferany: BufferAnytime nodes"

    def process(self, context):
        import nuke
        from bufferany_nuke import cache, node, settings

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


def _job_fields(found):
    """The node's settings as RenderJob fields, for rendering through the service or the CLI."""
    fields = {
        "depth_model": found.depth_model,
        "normal_model": found.normal_model,
        "weights": found.weights,
        "models_dir": found.models_dir,
        "device": found.device,
        "input_colorspace": found.input_colorspace,
        "depth_convention": found.depth_convention,
        "stabilize": found.stabilize,
        "options": found.options,
    }
    return {name: value for name, value in fields.items() if value is not None}
