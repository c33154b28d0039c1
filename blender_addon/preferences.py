"""Add-on preferences: where the server is and how to start one."""

from __future__ import annotations

import shlex
from typing import Any

import bpy

from .core import client


class BufferanyPreferences(bpy.types.AddonPreferences):
    bl_idname = __package__

    connection: bpy.props.EnumProperty(
        name="Connection",
        items=(
            ("DISCOVERY", "Discovery File", "Find the server through the file it publishes when it starts"),
            ("ADDRESS", "Address", "Connect to a host and port with the server's token"),
        ),
        default="DISCOVERY",
    )
    discovery_file: bpy.props.StringProperty(
        name="Discovery File",
        description="The server's discovery file (empty: $BUFFERANY_SERVER_FILE, else ~/.bufferany/server.json)",
        subtype="FILE_PATH",
    )
    start_server: bpy.props.BoolProperty(
        name="Start Server",
        description="Start a server when none answers (it keeps running after Blender quits)",
        default=True,
    )
    server_command: bpy.props.StringProperty(
        name="Server Command",
        description=(
            f"Command line that starts bufferany-server (empty: ${client.SERVER_COMMAND_ENV}, "
            f"else bufferany-server on PATH)"
        ),
    )
    host: bpy.props.StringProperty(name="Host", default="127.0.0.1")
    port: bpy.props.IntProperty(name="Port", default=0, min=0, max=65535)
    token: bpy.props.StringProperty(name="Token", subtype="PASSWORD")
    timeout: bpy.props.FloatProperty(
        name="Timeout",
        description="Seconds to wait for the server to answer, or to start",
        default=60.0,
        min=1.0,
        subtype="TIME_ABSOLUTE",
        unit="TIME_ABSOLUTE",
    )

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.prop(self, "connection", expand=True)
        if self.connection == "DISCOVERY":
            layout.prop(self, "discovery_file")
            layout.prop(self, "start_server")
            row = layout.row()
            row.enabled = self.start_server
            row.prop(self, "server_command")
        else:
            layout.prop(self, "host")
            layout.prop(self, "port")
            layout.prop(self, "token")
        layout.prop(self, "timeout")


def get(context) -> BufferanyPreferences | None:
    """The add-on's preferences; None when the add-on was registered without being enabled
    (e.g. `register()` called from a script), which means the defaults."""
    addon = context.preferences.addons.get(__package__)
    return addon.preferences if addon is not None else None


def connect_arguments(prefs: BufferanyPreferences | None) -> dict[str, Any]:
    """Keyword arguments of `Client.connect` for these preferences."""
    if prefs is None:
        return _idle_exit_in_background({"start_server": True, "timeout": 60.0})
    if prefs.connection == "ADDRESS":
        if not prefs.port or not prefs.token:
            raise ValueError(
                "preferences: give the server's port and token, or connect through the discovery file"
            )
        return {"host": prefs.host, "port": prefs.port, "token": prefs.token, "timeout": prefs.timeout}
    arguments: dict[str, Any] = {"start_server": prefs.start_server, "timeout": prefs.timeout}
    if prefs.discovery_file:
        arguments["discovery"] = bpy.path.abspath(prefs.discovery_file)
    if prefs.server_command.strip():
        arguments["server_command"] = shlex.split(prefs.server_command)
    return _idle_exit_in_background(arguments)


BACKGROUND_IDLE_EXIT_S = 300


def _idle_exit_in_background(arguments: dict[str, Any]) -> dict[str, Any]:
    """`blender -b` (a farm task): a server it starts gets `--idle-exit`, so it never outlives the task."""
    if not (bpy.app.background and arguments.get("start_server")):
        return arguments
    command = arguments.get("server_command")
    if command is None:
        try:
            command = client.default_server_command()
        except client.ServerNotFoundError:
            return arguments  # the client's own error names the fix when it tries
    return {**arguments, "server_command": [*command, "--idle-exit", str(BACKGROUND_IDLE_EXIT_S)]}
