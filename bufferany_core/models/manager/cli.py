"""`bufferany-models`: list, download, verify and locate the official weights of every model.

    bufferany-models list [--models-dir DIR] [--json]
    bufferany-models download [NAME ...] [--defaults] [--to DIR] [--accept-licence LICENCE ...]
    bufferany-models verify [NAME ...] [--models-dir DIR]
    bufferany-models path NAME [--models-dir DIR]

Files are looked up as a render looks them up (`--models-dir`, `$BUFFERANY_MODELS`, the Hugging
Face cache); `download` fetches through huggingface_hub (honouring `HF_ENDPOINT`, `HF_HOME`,
`HF_TOKEN`). Exits with `bufferany_core.errors.ExitCode`: 2 bad arguments or a licence not
accepted, 9 `--to` not writable, 10 weights missing, corrupt or not downloadable.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bufferany_core.cli_support import run_cli, say
from bufferany_core.errors import BadArgumentsError, ExitCode, MissingWeightsError, OutputNotWritableError
from bufferany_core.models.manager.inventory import (
    ManagedModel,
    all_models,
    download_models,
    model_files,
    select_models,
)
from bufferany_core.models.manager.verify import verify_models
from bufferany_core.models.weights import MODELS_ENV, missing_weights_error, models_folders

PROG = "bufferany-models"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="List, download, verify and locate the official weights of bufferany's models.",
        epilog=f"Renders look in --models-dir, then ${MODELS_ENV}, then the Hugging Face cache.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    models_dir = dict(type=Path, metavar="DIR", help=f"models folder to look in first (before ${MODELS_ENV})")

    listing = commands.add_parser("list", help="every model: family, size, licence, files and where they are")
    listing.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]
    listing.add_argument("--json", action="store_true", help="one JSON document instead of text")

    download = commands.add_parser("download", help="fetch the files the named models need")
    download.add_argument("names", nargs="*", metavar="NAME", help="models to fetch (see `list`)")
    download.add_argument("--defaults", action="store_true", help="the default depth, normal and flow models")
    download.add_argument(
        "--to", type=Path, metavar="DIR",
        help="a models folder (e.g. shared storage for a farm: workers set "
        f"{MODELS_ENV}=DIR) instead of the Hugging Face cache",
    )  # fmt: skip
    download.add_argument(
        "--accept-licence", action="append", default=[], metavar="LICENCE",
        help="accept a non-commercial licence (e.g. CC-BY-NC-4.0) for the models under it",
    )  # fmt: skip

    verify = commands.add_parser("verify", help="check found files: pinned size and sha256, strict state-dict load")
    verify.add_argument("names", nargs="*", metavar="NAME", help="models to check (default: every model found)")
    verify.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]

    path = commands.add_parser("path", help="print where a model's files are (one path a line)")
    path.add_argument("name", metavar="NAME")
    path.add_argument("--models-dir", **models_dir)  # type: ignore[arg-type]
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    commands = {"list": _list, "download": _download, "verify": _verify, "path": _path}
    return run_cli(PROG, lambda: commands[args.command](args), parser=parser, interrupted="interrupted")


# -- list ------------------------------------------------------------------------------------------


def _list(args: argparse.Namespace) -> int:
    models = all_models()
    states = {m.name: model_files(m, models_dir=args.models_dir) for m in models}
    if args.json:
        say(json.dumps([_model_json(m, states[m.name]) for m in models], indent=1))
        return ExitCode.OK
    places = [f"{label} {folder}" for folder, label in models_folders(args.models_dir)]
    say(f"Looking in: {'; '.join(places + [f'the Hugging Face cache {_hub_cache()}'])}")
    say("(* = default)")
    for model in models:
        star = " *" if model.default else ""
        say(f"{model.name}{star}  [{model.family}, {model.size}]  licence: {model.licence}")
        if model.random_only:
            say("    random weights only (tests and demos: --weights random)")
        for state in states[model.name]:
            size = f"{state.spec.size_bytes:,} bytes" if state.spec.size_bytes else "diffusers folder"
            head = f"    {state.label} ({size}, {state.spec.repo_id})"
            if state.path is None:
                say(f"{head}: missing")
            else:
                say(f"{head}: {state.source}: {state.path}")
                if state.missing_parts:
                    say(f"      incomplete, no {', '.join(state.missing_parts)}")
    missing = [m.name for m in models if any(not s.complete for s in states[m.name])]
    if missing:
        say(f"Fetch with: {PROG} download NAME ... (or --defaults: the starred models)")
    return ExitCode.OK


def _model_json(model: ManagedModel, states) -> dict:
    return {
        "name": model.name,
        "family": model.family,
        "size": model.size,
        "default": model.default,
        "licence": model.licence,
        "non_commercial": any(s.non_commercial for s in model.specs),
        "random_only": model.random_only,
        "files": [
            {
                "name": s.label,
                "repo_id": s.spec.repo_id,
                "kind": s.spec.kind,
                "size_bytes": s.spec.size_bytes,
                "sha256": s.spec.sha256,
                "path": None if s.path is None else str(s.path),
                "source": s.source,
                "missing_parts": list(s.missing_parts),
                "complete": s.complete,
            }
            for s in states
        ],
    }


def _hub_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


# -- download --------------------------------------------------------------------------------------


def _download(args: argparse.Namespace) -> int:
    if not args.names and not args.defaults:
        raise BadArgumentsError("name the models to download, or --defaults (see `bufferany-models list`)")
    models = select_models(args.names, defaults=args.defaults, downloadable=True)
    to = None if args.to is None else args.to.expanduser().resolve()
    if to is not None:
        try:
            to.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputNotWritableError(f"--to {to}: cannot create the models folder: {exc.strerror or exc}") from exc
        if not os.access(to, os.W_OK):
            raise OutputNotWritableError(f"--to {to}: the models folder is not writable")
    results = download_models(models, to=to, accepted=args.accept_licence, say=say)
    failed = [r for r in results if r.error is not None]
    if failed:
        raise MissingWeightsError(
            f"{len(failed)} of {len(results)} download(s) failed: "
            + "; ".join(f"{r.spec.name}: {r.error}" for r in failed)
        )
    names = " ".join(m.name for m in models)
    if to is None:
        say(f"Done: {names} in the Hugging Face cache {_hub_cache()}; renders find them there.")
    else:
        say(f"Done: {names} in {to}.")
        say(f"Renders find them with --models-dir {to}, or with {MODELS_ENV}={to} in their environment")
        say(f"(farm workers: export {MODELS_ENV}={to}; they need no network).")
    return ExitCode.OK


# -- verify ----------------------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    named = bool(args.names)
    models = select_models(args.names) if named else [m for m in all_models() if not m.random_only]
    checks = verify_models(models, models_dir=args.models_dir)
    for check in checks:
        verdict = {True: "ok", False: "FAILED", None: "missing"}[check.ok]
        where = "" if check.path is None else f"  {check.path}"
        say(f"{verdict:8}{check.label}  ({', '.join(check.models)}){where}")
        for line in check.details if check.ok is not None else []:
            say(f"        {line}")
    failed = [c for c in checks if c.ok is False]
    missing = [c for c in checks if c.ok is None]
    if failed:
        raise MissingWeightsError(
            f"{len(failed)} weight file(s) failed verification: {', '.join(c.label for c in failed)}; "
            f"delete them and run `{PROG} download` again"
        )
    if named and missing:
        wanted = {m.name: tuple(s.name for s in m.specs) for m in models}
        raise missing_weights_error(wanted, models_dir=args.models_dir)
    found = len(checks) - len(missing)
    say(f"Verified {found} file(s)" + (f"; {len(missing)} not found (not checked)" if missing else ""))
    return ExitCode.OK


# -- path ------------------------------------------------------------------------------------------


def _path(args: argparse.Namespace) -> int:
    (model,) = select_models([args.name])
    if model.random_only:
        raise BadArgumentsError(f"{model.name} is a test model with random weights only: it has no files")
    states = model_files(model, models_dir=args.models_dir)
    if any(not s.complete for s in states):
        raise missing_weights_error({model.name: tuple(s.name for s in model.specs)}, models_dir=args.models_dir)
    for state in states:
        print(state.path, file=sys.stdout, flush=True)
    return ExitCode.OK


if __name__ == "__main__":
    raise SystemExit(main())
