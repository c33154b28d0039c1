"""The passes keep the plate's geometry: data window, display window, pixel aspect (OpenImageIO: imported when it runs)."""

import pyblish.api

from bufferany_core.publish import instances as keys
from bufferany_core.publish.actions import RerenderFailedFrames


class ValidateBufferanyMatchesPlate(pyblish.api.InstancePlugin):
    """Each passes frame has the data window, display window and pixel aspect of its plate frame."""

    order = pyblish.api.ValidatorOrder + 0.04
    families = [keys.FAMILY]
    label = "bufferany: geometry matches the plate"
    actions = [RerenderFailedFrames]

    def process(self, instance):
        checks = keys.farm_checks()
        plate = checks.PlateHeaders(instance.data[keys.PLATE])

        def check(item):
            return checks.geometry_problems(item.info, plate.info(item.frame), plate.path(item.frame))

        problems = checks.problems_per_frame(instance, check)
        checks.fail_if(problems, what="geometry differs from the plate", instance=instance, plugin=type(self))
