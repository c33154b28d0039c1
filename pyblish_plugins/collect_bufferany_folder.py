"""Collect plates and their passes from a folder (farm side: reads plate headers with OpenImageIO).

The folder is `context.data["bufferanyFolder"]`, else $BUFFERANY_PUBLISH_FOLDER. It holds either a
`bufferany_publish.json` manifest or plate sequences, each with its `<name>_buffers.####.exr` beside it.
"""

import os

import pyblish.api

from bufferany_core.publish import instances as keys

FOLDER_KEY = "bufferanyFolder"
FOLDER_ENV = "BUFFERANY_PUBLISH_FOLDER"


class CollectBufferanyFolder(pyblish.api.ContextPlugin):
    """One `bufferany.passes` instance per plate in the publish folder."""

    order = pyblish.api.CollectorOrder
    label = "bufferany: plates in a folder"

    def process(self, context):
        folder = context.data.get(FOLDER_KEY) or os.environ.get(FOLDER_ENV)
        if not folder:
            self.log.info(f"no folder to collect: set context.data[{FOLDER_KEY!r}] or ${FOLDER_ENV}")
            return
        from bufferany_core.publish.folder import shots_in  # numpy/OIIO: only when a folder is given

        for shot in shots_in(folder):
            name = shot.pop("name")
            instance = context.create_instance(name, family=keys.FAMILY, families=[keys.FAMILY], **shot)
            self.log.info(
                f"{name}: frames {instance.data[keys.FRAME_START]}-{instance.data[keys.FRAME_END]} "
                f"of {instance.data[keys.PLATE]} -> {instance.data[keys.OUTPUT]}"
            )
