"""Make `bufferany_core` importable inside Nuke's own Python (standard library only).

Nuke cannot pip-install the project, so the host needs the folder that holds `bufferany_core/`:
`$BUFFERANY_CORE_PATH` when set, else the checkout this plugin folder sits in.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CORE_PATH_ENV = "BUFFERANY_CORE_PATH"


def core_root() -> Path:
    """The folder that must be on sys.path for `import bufferany_core`."""
    configured = os.environ.get(CORE_PATH_ENV)
    root = Path(configured).expanduser() if configured else Path(__file__).resolve().parents[2]
    if not (root / "bufferany_core" / "__init__.py").is_file():
        raise ImportError(
            f"bufferany_core not found under {root}: set ${CORE_PATH_ENV} to the folder that contains "
            "bufferany_core/ (the bufferany checkout)"
        )
    return root


def ensure_core_importable() -> Path:
    root = core_root()
    if str(root) not in sys.path:
        sys.path.append(str(root))
    return root
