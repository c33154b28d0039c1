"""Publish validated passes to `<publishRoot>/<name>/v###/` atomically (host side: standard library)."""

import getpass
import socket
import time

import pyblish.api

from bufferany_core.errors import BadArgumentsError
from bufferany_core.publish import instances as keys
from bufferany_core.publish.integrate import publish


class IntegrateBufferanyVersion(pyblish.api.InstancePlugin):
    """Copy the passes into the next free version folder; a published version is never overwritten."""

    order = pyblish.api.IntegratorOrder
    families = [keys.FAMILY]
    label = "bufferany: publish a new version"

    def process(self, instance):
        root = keys.setting(instance, keys.PUBLISH_ROOT)
        if not root:
            raise BadArgumentsError(
                f"{instance.name}: set {keys.PUBLISH_ROOT!r} on the instance or the context"
            )
        frames = keys.frame_range(instance)
        files = [keys.frame_path(instance.data[keys.OUTPUT], frame) for frame in frames]
        manifest = {
            "name": instance.name,
            "family": keys.FAMILY,
            "plate": instance.data[keys.PLATE],
            "source": instance.data[keys.OUTPUT],
            "files": [path.name for path in files],
            "frames": [frames[0], frames[-1]],
            "passes": list(instance.data[keys.PASSES]),
            "resolution": instance.data.get(keys.RESOLUTION),
            "pixelAspect": instance.data.get(keys.PIXEL_ASPECT),
            "flickerScores": instance.data.get("flickerScores"),
            "user": getpass.getuser(),
            "host": socket.gethostname(),
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        folder = publish(root, instance.name, files, manifest=manifest)
        version = int(folder.name[1:])
        instance.data[keys.PUBLISHED] = {
            "version": version,
            "folder": str(folder),
            "pattern": str(folder / _hash_name(instance.data[keys.OUTPUT])),
        }
        self.log.info(f"{instance.name}: published v{version:03d} to {folder}")


def _hash_name(pattern):
    return pattern.replace("\\", "/").rsplit("/", 1)[-1]
