"""The "Buffer Anytime" compositor node group.

Blender's compositor cannot run Python per pixel, so the group wraps an Image node reading the
generated multilayer EXR sequence and exposes its passes as group outputs `Image`, `Depth` and
`Normal`. Where the scene's compositor lives differs between Blender versions: see compat.py.
"""

from __future__ import annotations

import os

import bpy

from . import compat, sources
from .core import conventions

GROUP_NAME = "Buffer Anytime"
IMAGE_NODE_NAME = "Buffer Anytime Passes"
# (group output, socket type, the Image node's output feeding it: the EXR pass name; the plate's
# unnamed RGBA layer is "Combined")
OUTPUTS = (
    ("Image", "NodeSocketColor", "Combined"),
    ("Depth", "NodeSocketFloat", conventions.DEPTH_LAYER),
    ("Normal", "NodeSocketVector", conventions.NORMAL_LAYER),
)


def load_sequence(first_file: str) -> bpy.types.Image:
    """The image datablock reading the sequence that starts with `first_file` (reused and reloaded
    if one already reads it), as non-colour data: depth and normals must reach nodes untouched."""
    wanted = os.path.normpath(first_file)
    for image in bpy.data.images:
        if (
            image.source in ("FILE", "SEQUENCE")
            and os.path.normpath(bpy.path.abspath(image.filepath)) == wanted
        ):
            image.reload()
            break
    else:
        image = bpy.data.images.load(first_file, check_existing=False)
    image.source = "SEQUENCE"
    image.colorspace_settings.is_data = True
    return image


def _group_tree() -> bpy.types.NodeTree:
    for tree in bpy.data.node_groups:
        if tree.name == GROUP_NAME and tree.bl_idname == "CompositorNodeTree":
            return tree
    return bpy.data.node_groups.new(GROUP_NAME, "CompositorNodeTree")


def _ensure_outputs(group: bpy.types.NodeTree) -> None:
    existing = {
        item.name
        for item in group.interface.items_tree
        if item.item_type == "SOCKET" and item.in_out == "OUTPUT"
    }
    for name, socket_type, _ in OUTPUTS:
        if name not in existing:
            group.interface.new_socket(name, in_out="OUTPUT", socket_type=socket_type)


def build_node_group(
    image: bpy.types.Image, first: int, last: int, *, offset: int = 0, pixel_aspect: float | None = None
) -> bpy.types.NodeTree:
    """Add (or update) the node group: outputs Image, Depth and Normal from `image`, a multilayer
    EXR sequence holding plate frames `first`..`last`, shown at scene frames `first - offset`..
    `last - offset` (plate frame = scene frame + `offset`, the source's Frame Offset). The plate's
    pixel aspect (None: the first file's header) becomes the image's display aspect, as the plate's
    format stays on the passes in Nuke. Outputs whose pass the files lack stay unlinked (black)."""
    if last < first:
        raise ValueError(f"frame range {first}-{last} is empty")
    group = _group_tree()
    _ensure_outputs(group)
    node = group.nodes.get(IMAGE_NODE_NAME)
    if node is None:
        node = group.nodes.new("CompositorNodeImage")
        node.name = node.label = IMAGE_NODE_NAME
        node.location = (-300.0, 0.0)
    output = next((n for n in group.nodes if n.bl_idname == "NodeGroupOutput"), None)
    if output is None:
        output = group.nodes.new("NodeGroupOutput")
        output.location = (100.0, 0.0)
    node.image = image
    if pixel_aspect is None:
        pixel_aspect = sources.exr_pixel_aspect(bpy.path.abspath(image.filepath)) or 1.0
    image.display_aspect = (pixel_aspect, 1.0)
    # Blender numbers a sequence's first file 1: scene frame F shows file F - frame_start +
    # frame_offset + 1, so files first..last show at scene frames first - offset.. with start
    # `first - offset` and frame offset `first - 1`.
    node.frame_start = first - offset
    node.frame_duration = last - first + 1
    node.frame_offset = first - 1
    node.use_auto_refresh = True
    for link in list(group.links):
        if link.to_node == output:
            group.links.remove(link)
    for name, _, layer in OUTPUTS:
        source = node.outputs.get(layer)
        if source is not None and source.enabled:
            group.links.new(source, output.inputs[name])
    return group


def add_group_node(scene: bpy.types.Scene, group: bpy.types.NodeTree) -> bpy.types.Node:
    """The group's node in the scene's compositor: the existing one (its links kept), else a new one
    below the other nodes, left unconnected for the user to wire."""
    tree = compat.compositor_tree(scene)
    for node in tree.nodes:
        if node.bl_idname == "CompositorNodeGroup" and node.node_tree == group:
            return node
    bottom = min((n.location.y - n.dimensions.y for n in tree.nodes), default=0.0)
    left = min((n.location.x for n in tree.nodes), default=0.0)
    node = tree.nodes.new("CompositorNodeGroup")
    node.node_tree = group
    node.location = (left, bottom - 100.0)
    return node
