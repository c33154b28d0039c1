# Nuke runs this file in the GUI only: the node's menu entry (Nodes toolbar > BufferAnytime), and the
# callbacks that cancel a script's jobs when it closes. Only when the plugin loaded (init.py says why not).
import nuke

try:
    import bufferany_nuke
except Exception:  # noqa: BLE001 (init.py has already printed the one line saying why)
    bufferany_nuke = None  # type: ignore[assignment]
if bufferany_nuke is not None:
    nuke.menu("Nodes").addMenu("BufferAnytime").addCommand(
        "BufferAnytime", "import bufferany_nuke; bufferany_nuke.create_node()"
    )
    bufferany_nuke.install_callbacks()
