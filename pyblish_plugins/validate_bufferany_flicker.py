"""Temporal flicker of each pass under a threshold (numpy, OpenImageIO: imported when they run).

The score is defined in `bufferany_core.publish.checks.Flicker`; `flickerThreshold` (instance or
context) is a number for every pass or {"depth": x, "normal": y}; defaults 0.05 each.
"""

import pyblish.api

from bufferany_core import conventions
from bufferany_core.publish import instances as keys
from bufferany_core.publish.actions import RerenderStabilized

_CHANNELS = {"depth": ((conventions.DEPTH_CHANNEL,), True), "normal": (conventions.NORMAL_CHANNELS, False)}


class ValidateBufferanyFlicker(pyblish.api.InstancePlugin):
    """Each pass's temporal flicker score is at most its threshold."""

    order = pyblish.api.ValidatorOrder + 0.2
    families = [keys.FAMILY]
    label = "bufferany: temporal flicker"
    actions = [RerenderStabilized]

    def process(self, instance):
        checks = keys.farm_checks()
        thresholds = checks.flicker_thresholds(keys.setting(instance, keys.FLICKER_THRESHOLD))
        files = checks.pass_files(instance)
        problems, scores = [], {}
        for name in instance.data[keys.PASSES]:
            channels, scale_free = _CHANNELS[name]
            found = checks.flicker(files, channels, scale_free=scale_free)
            if found is None:
                self.log.info(f"{instance.name}: fewer than 3 consecutive frames, no {name} flicker score")
                continue
            scores[name] = found.score
            if found.score > thresholds[name]:
                worst = ", ".join(f"frame {frame} ({value:.3g})" for frame, value in found.worst)
                problems.append(
                    checks.Problem(
                        f"{name} ({', '.join(channels)}): flicker score {found.score:.3g} > threshold "
                        f"{thresholds[name]:g} in {instance.data[keys.OUTPUT]}; worst frames: {worst}"
                    )
                )
        instance.data["flickerScores"] = scores
        checks.fail_if(problems, what="temporal flicker", instance=instance, plugin=type(self))
