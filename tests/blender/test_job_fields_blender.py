"""A field added once to RenderJob shows up in the Blender add-on without any other edit: a copy of
bufferany_core gets one more field, and the copied add-on, in real Blender, registers a property for
it, draws it with the advanced settings and carries its value into the job it sends."""

from __future__ import annotations

import pytest
from job_field_copy import copy_with_new_field, run_in

pytestmark = pytest.mark.blender

SCRIPT = """
import json, sys
import bpy
import addon_utils

def fail(exc):
    raise exc

module = addon_utils.enable("blender_addon", default_set=True, handle_error=fail)
import bufferany_core
from blender_addon import generation, ui

class Layout:
    '''Records the properties a panel draws.'''
    def __init__(self):
        self.drawn = []
    def prop(self, data, name, **kwargs):
        self.drawn.append(name)
    def row(self, **kwargs):
        return self
    def menu(self, *args, **kwargs):
        pass

scene = bpy.context.scene
settings = scene.bufferany
prop = settings.bl_rna.properties["sharpen"]
settings.filepath = "/plates/shot.1001.exr"
default_value, default_job = settings.sharpen, generation.Generation(scene, {}).job
settings.sharpen = 3
job = generation.Generation(scene, {}).job
basic, advanced = Layout(), Layout()
ui.draw_job_settings(basic, settings, advanced=False)
ui.draw_job_settings(advanced, settings, advanced=True)
found = {
    "addon": module.__file__,
    "core": bufferany_core.__file__,
    "type": prop.type,
    "name": prop.name,
    "description": prop.description,
    "default_value": default_value,
    "in_default_job": "sharpen" in default_job,
    "job": job.get("sharpen"),
    "advanced": "sharpen" in advanced.drawn and "sharpen" not in basic.drawn,
}
addon_utils.disable("blender_addon", default_set=True, handle_error=fail)
print(json.dumps(found))
"""


def test_a_field_added_to_renderjob_gets_a_property_that_reaches_the_job(tmp_path):
    copy = copy_with_new_field(tmp_path, "blender_addon")
    found = run_in(copy, SCRIPT, cwd=tmp_path)
    assert found["addon"] == str(copy / "blender_addon" / "__init__.py")  # the copies, not the checkout
    assert found["core"] == str(copy / "bufferany_core" / "__init__.py")
    assert found["type"] == "INT" and found["name"] == "Sharpen"
    assert found["description"] == "test field; 0 = the default"
    assert found["default_value"] == 0 and not found["in_default_job"]  # 0: the default, not sent
    assert found["job"] == 3
    assert found["advanced"]
