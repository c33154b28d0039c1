"""Render the passes an instance lacks, before validation (host side: standard library + client).

Runs after collection and before the validators (order ValidatorOrder - 0.49): pyblish stops before
the extractor stage once a validator failed, so passes rendered at ExtractorOrder would never be
validated; and a collect-only pass (a pyblish UI listing instances) must not start renders. Only
instances whose `render` setting is "cli", "service" or "nuke" are rendered.
"""

import pyblish.api

from bufferany_core.publish import instances as keys
from bufferany_core.publish.render_missing import render_frames


class ExtractBufferanyMissingPasses(pyblish.api.InstancePlugin):
    """Render missing frames of the passes through `bufferany-render` or the bufferany server."""

    order = pyblish.api.ValidatorOrder - 0.49
    families = [keys.FAMILY]
    label = "bufferany: render missing passes"

    def process(self, instance):
        method = keys.setting(instance, keys.RENDER)
        missing = keys.missing_frames(instance)
        if not missing:
            self.log.info(f"{instance.name}: every frame of {instance.data[keys.OUTPUT]} exists")
            return
        if not method:
            self.log.info(
                f"{instance.name}: {len(missing)} frame(s) missing; render is not set: not rendering"
            )
            return
        result = render_frames(instance, missing, log=self.log)
        instance.data["renderResult"] = result
        self.log.info(f"{instance.name}: rendered {len(missing)} frame(s) with {method}")
