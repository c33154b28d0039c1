"""Command line of `bufferany-server`."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import logging.handlers
import os
import sys

from bufferany_core import discovery
from bufferany_core.errors import BufferanyError, ExitCode
from bufferany_core.service.server import (
    MAX_FRAMES,
    MAX_IMAGE_PIXELS,
    MAX_QUEUED,
    MAX_QUEUED_PER_CLIENT,
    Server,
)

log = logging.getLogger("bufferany.server")
LOG_BYTES = 10 << 20
LOG_BACKUPS = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bufferany-server",
        description="Background render service for bufferany: owns the GPU, keeps models loaded, "
        "queues jobs from Nuke, Blender and other clients (protocol: docs/protocol.md).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument(
        "--port",
        type=int,
        default=0,
        help="TCP port (default 0: any free port, published in the discovery file)",
    )
    parser.add_argument(
        "--device", default="auto", help="device for jobs that ask for 'auto': auto | cpu | cuda | cuda:N"
    )
    parser.add_argument(
        "--discovery",
        default=None,
        help=f"discovery file to write (default ${discovery.DISCOVERY_ENV} or ~/.bufferany/server.json)",
    )
    parser.add_argument(
        "--allow-root",
        action="append",
        default=[],
        metavar="DIR",
        help=f"a folder jobs may read inputs from and write outputs under (repeatable). Default: "
        f"${ALLOW_ROOTS_ENV} (folders separated by {os.pathsep!r}), else the server's working directory "
        "(none when that is /); jobs elsewhere are rejected",
    )
    parser.add_argument(
        "--max-models",
        type=int,
        default=4,
        metavar="N",
        help="predictors kept loaded between jobs (default 4: depth and normal at two settings); "
        "past N the least recently used one is unloaded and loads again when a job needs it",
    )
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="shut down cleanly (discovery file removed) once no client has been connected and no job "
        "queued or running for SECONDS: for a server started by a farm task or a batch host, which "
        "must not outlive it (default: run until stopped)",
    )
    limits = parser.add_argument_group("limits (each refusal is a clear error to the client)")
    limits.add_argument("--max-queue", type=int, default=MAX_QUEUED, metavar="N",
                        help=f"jobs waiting at once, all clients (default {MAX_QUEUED}); past it: 'queue_full'")
    limits.add_argument("--max-queue-per-client", type=int, default=MAX_QUEUED_PER_CLIENT, metavar="N",
                        help=f"jobs waiting at once per client name (default {MAX_QUEUED_PER_CLIENT})")
    limits.add_argument("--max-frames", type=int, default=MAX_FRAMES, metavar="N",
                        help=f"frames one job may name or span (default {MAX_FRAMES})")
    limits.add_argument("--max-image-pixels", type=int, default=MAX_IMAGE_PIXELS, metavar="N",
                        help=f"width x height of a plate, read from its header (default {MAX_IMAGE_PIXELS}: 8192x8192)")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                        help="info: one line per job start and end; debug adds tracebacks of internal errors")
    parser.add_argument("--log-file", default=None, metavar="PATH",
                        help=f"log to PATH, rotated at {LOG_BYTES >> 20} MiB with {LOG_BACKUPS} old files kept "
                        "(default: stderr)")
    return parser


ALLOW_ROOTS_ENV = "BUFFERANY_ALLOW_ROOTS"


def default_roots() -> list[str]:
    """Without --allow-root: the studio's `$BUFFERANY_ALLOW_ROOTS` (its project and render mounts, set
    where the server is started), else the working directory the server started in, unless that is
    the filesystem's root (a daemon's usual cwd), which would allow everything."""
    configured = [os.path.realpath(p) for p in os.environ.get(ALLOW_ROOTS_ENV, "").split(os.pathsep) if p]
    if configured:
        return configured
    cwd = os.path.realpath(os.getcwd())
    return [] if os.path.dirname(cwd) == cwd else [cwd]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for option in ("max_models", "max_queue", "max_queue_per_client", "max_frames", "max_image_pixels"):
        if getattr(args, option) < 1:
            parser.error(f"--{option.replace('_', '-')} must be at least 1, got {getattr(args, option)}")  # exits 2
    if args.idle_exit is not None and not args.idle_exit > 0:
        parser.error(f"--idle-exit must be more than 0 seconds, got {args.idle_exit}")
    handlers: list[logging.Handler] = []
    if args.log_file:
        try:
            handlers.append(
                logging.handlers.RotatingFileHandler(
                    args.log_file, maxBytes=LOG_BYTES, backupCount=LOG_BACKUPS, encoding="utf-8"
                )
            )
        except OSError as exc:
            parser.error(f"--log-file {args.log_file}: {exc.strerror or exc}")
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s bufferany-server %(levelname)s: %(message)s",
        handlers=handlers or None,
    )
    try:
        if not ipaddress.ip_address(args.host).is_loopback:
            log.warning(
                "listening on %s: other machines can reach this server (the token still guards it; "
                "traffic is not encrypted)",
                args.host,
            )
    except ValueError:
        log.warning("listening on host name %s, not a loopback address", args.host)
    path = discovery.resolve_path(args.discovery)
    lock = discovery.ServerLock(path)
    try:
        locked = lock.acquire()
    except OSError as exc:  # e.g. a file where the discovery folder should be, or no permission
        print(f"bufferany-server: cannot create the lock file {lock.path}: {exc.strerror or exc}", file=sys.stderr)
        return int(ExitCode.OUTPUT_NOT_WRITABLE)  # not SERVICE: clients read that as "another server won"
    if not locked:
        print(
            f"bufferany-server: a server is already running for {path} (it holds {lock.path})",
            file=sys.stderr,
        )
        return int(ExitCode.SERVICE)
    # The event loop must answer clients while the worker thread runs Python-heavy pipeline code;
    # with the default 5 ms GIL switch interval every reply waited ~10 ms behind it.
    sys.setswitchinterval(0.0005)
    roots = args.allow_root or default_roots()
    if not roots:
        log.warning("no --allow-root and the working directory is /: every job will be rejected")
    server = Server(
        host=args.host,
        port=args.port,
        device=args.device,
        discovery_path=path,
        allowed_roots=roots,
        max_models=args.max_models,
        max_queue=args.max_queue,
        max_queue_per_client=args.max_queue_per_client,
        max_frames=args.max_frames,
        max_image_pixels=args.max_image_pixels,
        idle_exit=args.idle_exit,
    )
    try:
        asyncio.run(server.run())
    except BufferanyError as exc:  # before OSError: OutputNotWritableError (discovery file) is one too
        print(f"bufferany-server: {exc}", file=sys.stderr)
        return int(exc.exit_code)
    except OSError as exc:
        print(f"bufferany-server: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return int(ExitCode.SERVICE)
    finally:
        lock.release()
    return 0
