"""The node's knobs read once on the main thread into plain values the worker thread may use."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nuke

from bufferany_core import discovery
from bufferany_core.errors import BadArgumentsError, FrameRangeError
from bufferany_nuke import colour, node
from bufferany_nuke.job_knobs import read_job

CACHE_ENV = "BUFFERANY_NUKE_CACHE"
TOKEN_ENV = "BUFFERANY_SERVER_TOKEN"
IDLE_EXIT_ENV = "BUFFERANY_SERVER_IDLE_EXIT"
DEFAULT_IDLE_EXIT_S = 300  # a server started in batch mode (nuke -t, a farm task) stops after this long unused
DEFAULT_CACHE = "~/.bufferany/nuke_cache"
SCRIPT_CACHE = "bufferany_cache"  # beside a saved script, when nothing else names the cache root

# The pipeline's cache root: a callable (node -> folder, or None to fall through), set from a
# studio's init.py or menu.py with set_cache_root_callback.
_cache_root_callback: Callable[[nuke.Node], str | None] | None = None


def set_cache_root_callback(callback: Callable[[nuke.Node], str | None] | None) -> None:
    """Let the pipeline choose each node's cache root (e.g. /shows/SHOW/SHOT/cache/bufferany);
    called on the main thread at Generate. None removes it."""
    global _cache_root_callback
    _cache_root_callback = callback


@dataclass(frozen=True)
class Connection:
    """How to reach the server: its discovery file (None: the default one), which holds host, port
    and token, so no secret is ever stored in the Nuke script; or a remote host and port, with the
    token from $BUFFERANY_SERVER_TOKEN or the discovery file."""

    discovery: str | None = None
    start_server: bool = False
    host: str | None = None
    port: int | None = None
    timeout: float = 30.0

    def connect_kwargs(self) -> dict[str, Any]:
        if self.host:
            return {"host": self.host, "port": self.port, "token": self._token(), "timeout": self.timeout}
        found: dict[str, Any] = {"discovery": self.discovery, "start_server": self.start_server, "timeout": self.timeout}
        if self.start_server:
            found["server_command"] = server_command()
        return found

    def _token(self) -> str:
        token = os.environ.get(TOKEN_ENV)
        if token:
            return token
        path = discovery.resolve_path(self.discovery)
        info = discovery.read(path)
        if info is None:
            raise BadArgumentsError(
                f"server {self.host}:{self.port}: no token; set ${TOKEN_ENV}, or copy the server's "
                f"discovery file to {path}"
            )
        return str(info["token"])


@dataclass(frozen=True)
class NodeSettings:
    job: dict[str, Any]  # every host field of RenderJob (job_knobs.read_job), by field name
    first: int
    last: int
    connection: Connection
    cache_root: Path
    force: bool
    node_id: str = ""
    script: str = ""
    colour: colour.ColourPlan | None = None

    @property
    def passes(self) -> tuple[str, ...]:
        return tuple(self.job["passes"])

    @property
    def run_key(self) -> tuple[str, str]:
        """Which job in flight is this node's: the script and the node's identity, never its name."""
        return (self.script, self.node_id)

    def result_fields(self) -> dict[str, Any]:
        """The cache key's settings part: every job field's value and the frame range."""
        job = {name: list(value) if isinstance(value, tuple) else value for name, value in self.job.items()}
        return {"job": job, "frames": [self.first, self.last]}


# Nuke's environment is not the server's: $OCIO names the script's config (nuke-default or ACES), in
# which the server's colour space names do not exist, and Nuke's PYTHONPATH/PYTHONHOME point at its
# own Python. A server the node starts runs without them (the server converts with OCIO's built-in
# config). On Windows, without `env`, set BUFFERANY_SERVER_CMD to a wrapper that clears them.
SERVER_ENV_UNSET = ("OCIO", "PYTHONPATH", "PYTHONHOME")


def server_command() -> list[str] | None:
    """The command a node starts a server with: the client's default, under `env -u` for
    SERVER_ENV_UNSET. None (the client's own default and error) when no server command is found.
    In batch mode (`nuke -t`, a farm task) the server gets `--idle-exit` (idle_exit_seconds()): it
    must not outlive the task, even when the task is killed before batch.py can stop it."""
    from bufferany_core.client import default_server_command
    from bufferany_core.errors import ServiceError

    try:
        command = default_server_command()
    except ServiceError:
        return None
    if not nuke.GUI:
        command = [*command, "--idle-exit", str(idle_exit_seconds())]
    if os.name == "nt":
        return command
    unset = [arg for name in SERVER_ENV_UNSET for arg in ("-u", name)]
    return ["env", *unset, *command]


def idle_exit_seconds() -> int:
    """$BUFFERANY_SERVER_IDLE_EXIT (whole seconds, at least 1), else DEFAULT_IDLE_EXIT_S."""
    text = os.environ.get(IDLE_EXIT_ENV, "").strip()
    try:
        value = int(text) if text else DEFAULT_IDLE_EXIT_S
    except ValueError:
        raise BadArgumentsError(f"${IDLE_EXIT_ENV}={text!r}: give whole seconds") from None
    if value < 1:
        raise BadArgumentsError(f"${IDLE_EXIT_ENV}={text!r}: give at least 1 second")
    return value


def script_name() -> str:
    return str(nuke.root()["name"].value())


def read_settings(group: nuke.Group) -> NodeSettings:
    """Knob values of `group`, validated; raises FrameRangeError / BadArgumentsError naming the knob."""
    name = group.fullName()
    plate = group.input(0)
    if plate is None:
        raise BadArgumentsError(f"{name}: no input; connect the plate to the node")
    if nuke.root().proxy():
        raise BadArgumentsError(
            f"{name}: proxy mode is on: switch it off to generate (the passes are made from full-resolution "
            "plates, and proxy frames must never be cached as full resolution)"
        )
    first, last = _frame_range(group, plate)

    def text(knob: str) -> str | None:
        found = group.knob(knob)
        return (str(found.value()).strip() or None) if found is not None else None

    def number(knob: str, default: int) -> int:
        found = group.knob(knob)
        return int(found.value()) if found is not None else default

    job = read_job(group)
    plan = colour.plan(group, job.get("input_colorspace"))
    job["input_colorspace"] = plan.job_colorspace
    host, port, timeout = text("server_host"), number("server_port", 0), number("server_timeout", 30)
    if host and not 0 < port < 65536:
        raise BadArgumentsError(f"{name}: knob 'port': a remote server needs its port (1-65535), got {port}")
    if timeout < 1:
        raise BadArgumentsError(f"{name}: knob 'server timeout (s)' must be at least 1, got {timeout}")
    return NodeSettings(
        job=job,
        first=first,
        last=last,
        connection=Connection(
            discovery=text("server"),
            start_server=bool(group["start_server"].value()),
            host=host,
            port=port if host else None,
            timeout=float(timeout),
        ),
        cache_root=cache_root(group),
        force=bool(group["force"].value()),
        node_id=node.node_id(group),
        script=script_name(),
        colour=plan,
    )


def _frame_range(group: nuke.Group, plate: nuke.Node) -> tuple[int, int]:
    available = plate.frameRange()
    lo, hi = available.first(), available.last()
    if group["use_input_range"].value():
        return lo, hi
    first, last = int(group["first_frame"].value()), int(group["last_frame"].value())
    if first > last:
        raise FrameRangeError(
            f"{group.fullName()}: frame range {first}-{last}: the first frame is after the last"
        )
    if first < lo or last > hi:
        raise FrameRangeError(
            f"{group.fullName()}: frame range {first}-{last} lies outside the input's frames {lo}-{hi} "
            f"(input node {plate.fullName()})"
        )
    return first, last


def cache_root(group: nuke.Node) -> Path:
    """The cache root, first found: the node's "cache folder" knob (TCL and $env evaluated), the
    pipeline's callback, $BUFFERANY_NUKE_CACHE, `bufferany_cache/` beside the saved script, else
    ~/.bufferany/nuke_cache. Paths keep forward slashes."""
    knob = group.knob("cache_dir")
    folder = ""
    if isinstance(knob, nuke.File_Knob):
        folder = str(knob.evaluate() or "").strip()
    if not folder and _cache_root_callback is not None:
        folder = str(_cache_root_callback(group) or "").strip()
    if not folder:
        folder = os.environ.get(CACHE_ENV, "").strip()
    if not folder and script_name():
        folder = str(Path(script_name()).parent / SCRIPT_CACHE)
    return Path(os.path.expanduser(folder or DEFAULT_CACHE).replace("\\", "/"))
