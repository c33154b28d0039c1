"""The passes keep the plate's geometry: data window, display window, pixel aspect (farm side: OIIO)."""

import pyblish.api

from bufferany_core.frames import read_info
from bufferany_core.publish import checks
from bufferany_core.publish import instances as keys
from bufferany_core.publish.actions import RerenderFailedFrames


class ValidateBufferanyMatchesPlate(pyblish.api.InstancePlugin):
    """Each passes frame has the data window, display window and pixel aspect of its plate frame."""

    order = pyblish.api.ValidatorOrder + 0.04
    families = [keys.FAMILY]
    label = "bufferany: geometry matches the plate"
    actions = [RerenderFailedFrames]

    def process(self, instance):
        plate = checks.PlateHeaders(instance.data[keys.PLATE])

        def check(item):
            return checks.geometry_problems(
                read_info(item.path), plate.info(item.frame), plate.path(item.frame)
            )

        problems = checks.problems_per_frame(instance, check)
        checks.fail_if(problems, what="geometry differs from the plate", instance=instance, plugin=type(self))
