# Nuke runs this file in the GUI only: the node's menu entry (Nodes toolbar > BufferAnytime).
import nuke

toolbar = nuke.menu("Nodes")
toolbar.addMenu("BufferAnytime").addCommand(
    "BufferAnytime", "import bufferany_nuke; bufferany_nuke.create_node()"
)
