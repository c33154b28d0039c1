"""Validators that read the passes' pixels: finite values, unit normals (numpy, OpenImageIO: imported when they run)."""

import pyblish.api

from bufferany_core.publish import instances as keys
from bufferany_core.publish.actions import RerenderFailedFrames


class ValidateBufferanyFinite(pyblish.api.InstancePlugin):
    """No NaN or Inf in depth.Z or N.X/Y/Z."""

    order = pyblish.api.ValidatorOrder + 0.1
    families = [keys.FAMILY]
    label = "bufferany: no NaN or Inf"
    actions = [RerenderFailedFrames]

    def process(self, instance):
        checks = keys.farm_checks()
        names = list(checks.expected_channels(instance.data[keys.PASSES]))
        problems = checks.problems_per_frame(
            instance, lambda item: checks.non_finite_problems(item.path, names)
        )
        checks.fail_if(problems, what="non-finite pixels", instance=instance, plugin=type(self))


class ValidateBufferanyUnitNormals(pyblish.api.InstancePlugin):
    """Normals have unit length within `normalTolerance` (default 0.01)."""

    order = pyblish.api.ValidatorOrder + 0.11
    families = [keys.FAMILY]
    label = "bufferany: unit-length normals"
    actions = [RerenderFailedFrames]

    def process(self, instance):
        checks = keys.farm_checks()
        if "normal" not in instance.data[keys.PASSES]:
            return
        tolerance = float(keys.setting(instance, keys.NORMAL_TOLERANCE, checks.DEFAULT_NORMAL_TOLERANCE))
        problems = checks.problems_per_frame(
            instance, lambda item: checks.normal_problems(item.path, tolerance)
        )
        checks.fail_if(problems, what="normals not of unit length", instance=instance, plugin=type(self))
