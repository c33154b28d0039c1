"""bufferany: temporally stable depth and normal AOV passes for compositing.

Importing this package must stay cheap and host-safe: Nuke and Blender import parts of it
(`bufferany_core.client`, `bufferany_core.conventions`) with their embedded Python, where torch,
numpy and OpenImageIO are not available. Heavy modules are imported by the submodules that need them.
"""

__version__ = "0.1.0"
