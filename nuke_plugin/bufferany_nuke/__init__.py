"""The BufferAnytime node for Nuke: depth.Z and N.X/Y/Z channels from the bufferany server.

Host side: standard library, `nuke`, and the stdlib-only parts of bufferany_core.
"""

from bufferany_nuke.core_path import ensure_core_importable

ensure_core_importable()

from bufferany_nuke.cache import clean as clean_cache  # noqa: E402
from bufferany_nuke.generate import cancel, cancel_script_jobs, generate, install_callbacks  # noqa: E402
from bufferany_nuke.node import auto_range, create_node, is_bufferany_node, knob_changed, update_ui  # noqa: E402
from bufferany_nuke.settings import set_cache_root_callback  # noqa: E402

__all__ = [
    "auto_range",
    "cancel",
    "cancel_script_jobs",
    "clean_cache",
    "create_node",
    "generate",
    "install_callbacks",
    "is_bufferany_node",
    "knob_changed",
    "set_cache_root_callback",
    "update_ui",
]
