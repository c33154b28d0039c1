"""Validators that read only the passes files' headers: frames present, channels and types,
lossless compression, provenance. They import numpy/OpenImageIO when they run (farm side)."""

import pyblish.api

from bufferany_core.publish import instances as keys
from bufferany_core.publish.actions import RenderMissingFrames, RerenderFailedFrames, RewriteLossless


class ValidateBufferanyFrames(pyblish.api.InstancePlugin):
    """Every frame of the instance's range has its passes file."""

    order = pyblish.api.ValidatorOrder
    families = [keys.FAMILY]
    label = "bufferany: every frame present"
    actions = [RenderMissingFrames]

    def process(self, instance):
        checks = keys.farm_checks()
        problem = checks.missing_frames_problem(instance)
        if problem:
            raise checks.PublishValidationError(problem)


class ValidateBufferanyChannels(pyblish.api.InstancePlugin):
    """The requested passes' channels exist with the conventions' types (depth.Z float, N.* half or float)."""

    order = pyblish.api.ValidatorOrder + 0.01
    families = [keys.FAMILY]
    label = "bufferany: channels and types"
    actions = [RerenderFailedFrames]

    def process(self, instance):
        checks = keys.farm_checks()
        passes = instance.data[keys.PASSES]
        problems = checks.problems_per_frame(
            instance, lambda item: checks.channel_problems(item.info, passes)
        )
        checks.fail_if(
            problems, what="channels missing or of the wrong type", instance=instance, plugin=type(self)
        )


class ValidateBufferanyCompression(pyblish.api.InstancePlugin):
    """Data passes are stored losslessly (zip, zips, piz, rle or none)."""

    order = pyblish.api.ValidatorOrder + 0.02
    families = [keys.FAMILY]
    label = "bufferany: lossless compression"
    actions = [RewriteLossless]

    def process(self, instance):
        checks = keys.farm_checks()
        problems = checks.problems_per_frame(
            instance, lambda item: checks.compression_problems(checks.compression_of(item.path))
        )
        checks.fail_if(problems, what="lossy compression", instance=instance, plugin=type(self))


class ValidateBufferanyProvenance(pyblish.api.InstancePlugin):
    """The `bufferany/*` provenance header is present, and the weights were trained (unless the
    instance or context sets `allowUntrained`)."""

    order = pyblish.api.ValidatorOrder + 0.03
    families = [keys.FAMILY]
    label = "bufferany: provenance header"
    actions = [RerenderFailedFrames]

    def process(self, instance):
        checks = keys.farm_checks()
        passes = instance.data[keys.PASSES]
        allow = bool(keys.setting(instance, keys.ALLOW_UNTRAINED, False))
        problems = checks.problems_per_frame(
            instance, lambda item: checks.provenance_problems(item.info, passes, allow_untrained=allow)
        )
        checks.fail_if(
            problems, what="provenance header missing or untrained", instance=instance, plugin=type(self)
        )
