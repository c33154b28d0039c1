"""Everything that differs between the Blender versions the add-on supports (4.2 LTS to 5.3), in one
place. The rest of the add-on (and its tests) asks here instead of testing versions or properties.

- Compositor: 4.2 to 4.5 keep the scene's compositor in `scene.node_tree`, switched on by
  `scene.use_nodes`, and the final image is a Composite node's input. 5.0 and later make it a node
  group whose Group Output "Image" is the final image (no Composite node): 5.0 to 5.2 in
  `scene.compositing_node_group`; 5.3 in the active one of `scene.compositor_effects` (its
  `node_group`), where `compositing_node_group` remains, deprecated, until 6.0.
- Image output settings: 5.0 and later choose `media_type` (IMAGE, MULTI_LAYER_IMAGE, VIDEO) before
  the file format; 4.x has only `file_format`.
- Extensions: 4.2 and later install zips with `bpy.ops.extensions.package_install_files`, as the
  module `bl_ext.<repository>.<id>`; the legacy installer `bpy.ops.preferences.addon_install` still
  installs the same zip as a top-level add-on.
- Python: 4.2 to 5.0 embed Python 3.11, 5.1 and later 3.13; the add-on's code runs on both.
"""

from __future__ import annotations

from typing import Any

import bpy

SCENE_TREE_NAME = "Compositor"  # the tree made for a scene that had none (5.0 and later)


def version() -> tuple[int, int, int]:
    return tuple(bpy.app.version)  # type: ignore[return-value]


def legacy_compositor() -> bool:
    """True on Blender 4.2 to 4.5 (`scene.node_tree`), False on 5.0 and later."""
    return "node_tree" in bpy.types.Scene.bl_rna.properties


def _effects(scene: bpy.types.Scene) -> Any:
    """The scene's compositor effects (5.3 and later), else None."""
    if "compositor_effects" in bpy.types.Scene.bl_rna.properties:
        return scene.compositor_effects
    return None


def _node_group(scene: bpy.types.Scene) -> bpy.types.NodeTree | None:
    effects = _effects(scene)
    if effects is None:
        return scene.compositing_node_group
    active = effects.active
    return active.node_group if active is not None else None


def _set_node_group(scene: bpy.types.Scene, tree: bpy.types.NodeTree) -> None:
    effects = _effects(scene)
    if effects is None:
        scene.compositing_node_group = tree
        return
    effect = effects.active or effects.new(name=tree.name)
    effect.node_group = tree
    effect.enable_for_render = True


def compositor_tree(scene: bpy.types.Scene, *, create: bool = True) -> bpy.types.NodeTree | None:
    """The scene's compositor node tree. With `create`, one like Blender's own default (the render
    layers to the final image) is made for a scene that has none, so that turning the compositor on
    changes no render."""
    if legacy_compositor():
        if create:
            scene.use_nodes = True
        return scene.node_tree
    tree = _node_group(scene)
    if tree is None and create:
        tree = bpy.data.node_groups.new(SCENE_TREE_NAME, "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        layers = tree.nodes.new("CompositorNodeRLayers")
        output = tree.nodes.new("NodeGroupOutput")
        layers.location, output.location = (-300.0, 0.0), (200.0, 0.0)
        tree.links.new(layers.outputs["Image"], output.inputs["Image"])
        _set_node_group(scene, tree)
    return tree


def clear_compositor(scene: bpy.types.Scene) -> None:
    """The scene without a compositor (its render is the Render Layers' image)."""
    if legacy_compositor():
        if scene.node_tree is not None:
            scene.node_tree.nodes.clear()
        scene.use_nodes = False
    elif _effects(scene) is not None:
        scene.compositor_effects.clear()
    else:
        scene.compositing_node_group = None


def final_image_input(scene: bpy.types.Scene) -> bpy.types.NodeSocket:
    """The socket whose image the scene's render saves: the Composite node's input (4.x; the node is
    added if missing) or the compositor group's output "Image" (5.0 and later)."""
    tree = compositor_tree(scene)
    if legacy_compositor():
        node = next((n for n in tree.nodes if n.bl_idname == "CompositorNodeComposite"), None)
        node = node or tree.nodes.new("CompositorNodeComposite")
        return node.inputs["Image"]
    node = next((n for n in tree.nodes if n.bl_idname == "NodeGroupOutput"), None)
    if node is None:
        node = tree.nodes.new("NodeGroupOutput")
    if "Image" not in node.inputs:
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
    return node.inputs["Image"]


def output_format_changes(image_settings: Any, file_format: str) -> list[tuple[Any, str, Any]]:
    """(owner, property, value) that make `image_settings` write `file_format` (OPEN_EXR,
    OPEN_EXR_MULTILAYER, PNG...), in the order they must be set: the media type first where there
    is one."""
    changes: list[tuple[Any, str, Any]] = []
    if "media_type" in image_settings.bl_rna.properties:
        media = "MULTI_LAYER_IMAGE" if file_format == "OPEN_EXR_MULTILAYER" else "IMAGE"
        changes.append((image_settings, "media_type", media))
    changes.append((image_settings, "file_format", file_format))
    return changes


def set_output_format(image_settings: Any, file_format: str) -> None:
    for owner, name, value in output_format_changes(image_settings, file_format):
        setattr(owner, name, value)


def extension_module(package: str, repository: str = "user_default") -> str:
    """The module name of the extension `package` installed into `repository`."""
    return f"bl_ext.{repository}.{package}"
