# Nuke runs this file at start-up, in the GUI and in `nuke -t` alike: no UI calls here.
# Adding this folder to NUKE_PATH puts it on sys.path; importing bufferany_nuke makes bufferany_core
# importable (from $BUFFERANY_CORE_PATH, or the checkout this folder sits in), so scripts holding a
# BufferAnytime node load and render in batch as in the GUI. A failure prints one line (Nuke prints
# a traceback on every launch otherwise) and leaves Nuke running without the node.
import sys

try:
    import bufferany_nuke  # noqa: F401
except Exception as _exc:  # noqa: BLE001 (start-up must never stop Nuke)
    print(f"bufferany: the BufferAnytime node is not available: {type(_exc).__name__}: {_exc}", file=sys.stderr)
    del _exc
