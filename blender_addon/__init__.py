"""Buffer Anytime for Blender: temporally stable depth and normal passes as a compositor node group.

The passes are rendered by `bufferany-server` (the add-on only talks to it, with the standard
library); the result comes back as the "Buffer Anytime" node group with outputs Image, Depth and
Normal. An extension (blender_manifest.toml) for Blender 4.2 and newer; `bl_info` lets the same
folder install as a legacy add-on.
"""

from __future__ import annotations

bl_info = {
    "name": "Buffer Anytime",
    "description": "Temporally stable depth and normal passes for the compositor",
    "author": "bufferany developers",
    "version": (0, 1, 0),
    "blender": (4, 2, 0),
    "location": "Compositor > Sidebar > Buffer Anytime",
    "category": "Compositing",
}

import bpy  # noqa: E402

from . import operators, preferences, properties, ui  # noqa: E402

CLASSES = (*properties.CLASSES, preferences.BufferanyPreferences, *operators.CLASSES, *ui.CLASSES)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    properties.register()


def unregister() -> None:
    generation = operators.active()
    if generation is not None:
        generation.cancel()
    properties.unregister()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
