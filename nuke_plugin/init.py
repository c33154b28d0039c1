# Nuke runs this file at start-up, in the GUI and in `nuke -t` alike: no UI calls here.
# Adding this folder to NUKE_PATH puts it on sys.path; importing bufferany_nuke makes bufferany_core
# importable (from $BUFFERANY_CORE_PATH, or the checkout this folder sits in), so scripts holding a
# BufferAnytime node load and render in batch as in the GUI.
import bufferany_nuke  # noqa: F401
