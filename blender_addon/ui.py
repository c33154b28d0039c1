"""The "Buffer Anytime" panel in the compositor's sidebar."""

from __future__ import annotations

import bpy

from . import models
from .core import jobs
from .properties import pass_property


def menu_name(field: str) -> str:
    return f"BUFFERANY_MT_{field}"


def draw_job_settings(layout, settings, *, advanced: bool) -> None:
    """One row per job setting (RenderJob's host fields, see properties.py), basic or advanced ones."""
    for f, spec in jobs.host_fields():
        if spec.advanced != advanced:
            continue
        if spec.kind == "passes":
            row = layout.row(heading=spec.label.title())
            for name in jobs.PASSES:
                row.prop(settings, pass_property(name))
        elif f.name in models.model_fields():
            row = layout.row(align=True)
            row.prop(settings, f.name)
            row.menu(menu_name(f.name), text="", icon="DOWNARROW_HLT")
        else:
            layout.prop(settings, f.name)


def _model_menu(field: str, pass_name: str) -> type:
    """The menu of one model setting: the names found (server or catalogue), then Refresh."""

    def draw(self, context):
        layout = self.layout
        listing = models.found()
        for name in models.names(pass_name):
            default = listing and listing["default"].get(pass_name) == name
            op = layout.operator("bufferany.set_model", text=f"{name} (default)" if default else name)
            op.field, op.model = field, name
        if listing is None:
            layout.label(text="No list yet: refresh from the server")
        else:
            layout.label(text=f"Listed by the {listing['source']}")
        layout.separator()
        layout.operator("bufferany.refresh_models", icon="FILE_REFRESH")

    return type(
        menu_name(field),
        (bpy.types.Menu,),
        {"bl_idname": menu_name(field), "bl_label": f"{pass_name.title()} Models", "draw": draw},
    )


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
            layout.prop(settings, "frame_offset")
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

        draw_status(layout, status)


def draw_status(layout, status) -> None:
    """Progress and Cancel while a run goes on, else Generate; the frames done and the last error."""
    if status.running:
        layout.progress(factor=status.progress / 100.0, type="BAR", text=status.message)
        layout.operator("bufferany.cancel", icon="CANCEL")
    else:
        layout.operator("bufferany.generate", icon="RENDER_ANIMATION")
        if status.message and status.message != status.last_error:
            layout.label(text=status.message)
    if status.frames_done:
        total = f" (of {status.frames_total})" if status.frames_total else ""
        layout.label(text=f"Frames done: {status.frames_done}{total}", icon="CHECKMARK")
    if status.last_error:
        layout.label(text=status.last_error, icon="ERROR")


CLASSES = (BUFFERANY_PT_panel, *(_model_menu(field, name) for field, name in models.model_fields().items()))
