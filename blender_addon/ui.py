"""The "Buffer Anytime" panel in the compositor's sidebar."""

from __future__ import annotations

import bpy

from .core import jobs
from .properties import pass_property


def draw_job_settings(layout, settings, *, advanced: bool) -> None:
    """One row per job setting (RenderJob's host fields, see properties.py), basic or advanced ones."""
    for f, spec in jobs.host_fields():
        if spec.advanced != advanced:
            continue
        if spec.kind == "passes":
            row = layout.row(heading=spec.label.title())
            for name in jobs.PASSES:
                row.prop(settings, pass_property(name))
        else:
            layout.prop(settings, f.name)


class BUFFERANY_PT_panel(bpy.types.Panel):
    bl_label = "Buffer Anytime"
    bl_space_type = "NODE_EDITOR"
    bl_region_type = "UI"
    bl_category = "Buffer Anytime"

    @classmethod
    def poll(cls, context):
        return getattr(context.space_data, "tree_type", None) == "CompositorNodeTree"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        settings = context.scene.bufferany
        status = context.window_manager.bufferany_status

        layout.prop(settings, "source")
        if settings.source == "FILE":
            layout.prop(settings, "filepath")
            layout.prop(settings, "frame_range")
            if settings.frame_range == "CUSTOM":
                column = layout.column(align=True)
                column.prop(settings, "frame_start")
                column.prop(settings, "frame_end", text="End")
        else:
            layout.prop(settings, "cache_dir")
        draw_job_settings(layout, settings, advanced=False)
        layout.prop(settings, "overwrite")

        header, body = layout.panel("bufferany_advanced", default_closed=True)
        header.label(text="Advanced")
        if body is not None:
            draw_job_settings(body, settings, advanced=True)

        if status.running:
            layout.progress(factor=status.progress / 100.0, type="BAR", text=status.message)
            layout.operator("bufferany.cancel", icon="CANCEL")
        else:
            layout.operator("bufferany.generate", icon="RENDER_ANIMATION")
            if status.message:
                layout.label(text=status.message)


CLASSES = (BUFFERANY_PT_panel,)
