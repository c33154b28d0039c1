"""The model names the settings offer for each pass.

From the server when its status lists them (`available_models`: pass -> names, the ones it can
load), else from the model catalogue the build copied into the extension
(`vendor/model_catalogue.json`, written by scripts/build_blender_addon.py from
`bufferany_core.models.catalog`: every model of the catalogue, whether or not its weights are on
the server's machine). Run from a checkout (no build), only the server's list exists. The names
fill a menu beside each model setting; the setting itself stays free text.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .core import client, errors, jobs

CATALOGUE_FILE = Path(__file__).resolve().parent / "vendor" / "model_catalogue.json"
STATUS_KEY = "available_models"
SERVER, CATALOGUE = "server", "catalogue"

# the last list found: {"source": SERVER | CATALOGUE, "models": {pass: [names]}, "default": {pass: name}}
_found: dict[str, Any] | None = None


def model_fields() -> dict[str, str]:
    """Job field -> its pass, for the fields that name a pass's model (`depth_model`, ...)."""
    return {
        f"{name}_model": name
        for name in jobs.PASSES
        if f"{name}_model" in jobs.RenderJob.__dataclass_fields__
    }


def _names(listing: Any) -> dict[str, list[str]] | None:
    if not isinstance(listing, dict):
        return None
    found = {
        name: [str(model) for model in listing[name] if isinstance(model, str)]
        for name in jobs.PASSES
        if isinstance(listing.get(name), list)
    }
    return found or None


def from_status(status: dict[str, Any]) -> dict[str, Any] | None:
    models = _names(status.get(STATUS_KEY))
    if models is None:
        return None
    defaults = status.get("default_models")
    return {"source": SERVER, "models": models, "default": dict(defaults) if isinstance(defaults, dict) else {}}


def catalogue() -> dict[str, Any] | None:
    """The catalogue the build copied, else None."""
    try:
        data = json.loads(CATALOGUE_FILE.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    models = _names(data.get("models"))
    if models is None:
        return None
    return {"source": CATALOGUE, "models": models, "default": dict(data.get("default") or {})}


def refresh(connect: dict[str, Any] | None) -> dict[str, Any] | None:
    """Ask the server (`connect`: keyword arguments of Client.connect; None: do not ask); on no
    answer or no list, the catalogue. Returns what `found()` returns next. Blocks for at most the
    connection's timeout: called by a button, never while a job runs."""
    global _found
    result = None
    if connect is not None:
        try:
            with client.Client.connect(**connect) as connection:
                result = from_status(connection.status())
        except (errors.BufferanyError, OSError):
            result = None
    _found = result or catalogue()
    return _found


def found() -> dict[str, Any] | None:
    """The last list (refreshing from the catalogue on first use)."""
    global _found
    if _found is None:
        _found = catalogue()
    return _found


def names(pass_name: str) -> list[str]:
    listing = found()
    return list(listing["models"].get(pass_name, [])) if listing else []


def forget() -> None:
    global _found
    _found = None
