"""The standard-library half of bufferany that the add-on uses: the client, the job fields (`jobs`),
pass names.

The built extension carries a copy in `vendor/bufferany_core` (scripts/build_blender_addon.py makes
it, with package-relative imports, so it never clashes with another copy on sys.path). Run from a
checkout, the add-on imports the repository's own package: the folder above this one, or
$BUFFERANY_CORE_PATH (a folder holding `bufferany_core/`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CORE_PATH_ENV = "BUFFERANY_CORE_PATH"
VENDORED = Path(__file__).resolve().parent / "vendor" / "bufferany_core"

if VENDORED.is_dir():
    from .vendor.bufferany_core import __version__, client, conventions, errors, framepaths, jobs, protocol  # noqa: F401
else:
    _root = os.environ.get(CORE_PATH_ENV) or str(Path(__file__).resolve().parent.parent)
    if not (Path(_root) / "bufferany_core" / "client.py").is_file():
        raise ImportError(
            f"bufferany_core is not in {_root}: install the built extension "
            f"(python scripts/build_blender_addon.py) or set {CORE_PATH_ENV} to the repository"
        )
    if _root not in sys.path:
        sys.path.insert(0, _root)
    from bufferany_core import __version__, client, conventions, errors, framepaths, jobs, protocol  # noqa: F401
