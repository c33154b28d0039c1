"""Build the BufferAnytime Group and wire the generated passes into its output stream.

Inside the Group: Input `Plate` -> Copy `CopyPasses` (B) -> Output, with Read `PassesRead` on the
Copy's A input; Write `CacheWrite` renders the plate to the EXR cache the server reads. The Copy stays
disabled (plate passes through untouched) until passes are linked. Main thread only.
"""

from __future__ import annotations

import nuke

from bufferany_core import conventions
from bufferany_nuke import job_knobs
from bufferany_nuke.job_knobs import PASS_CHOICES

NODE_MARKER = "bufferany_node"  # hidden knob telling a BufferAnytime Group from any other Group
PLATE = "Plate"
CACHE_WRITE = "CacheWrite"
PASSES_READ = "PassesRead"
COPY = "CopyPasses"
OUTPUT = "Output"

COPY_SLOTS = 4  # Nuke's Copy node copies at most four channels: depth.Z + N.X/Y/Z
LAYER_KNOBS = ("depth_layer", "normal_layer", "passes")

_GENERATE = "import bufferany_nuke; bufferany_nuke.generate(nuke.thisNode())"
_CANCEL = "import bufferany_nuke; bufferany_nuke.cancel(nuke.thisNode())"
_KNOB_CHANGED = "import bufferany_nuke; bufferany_nuke.knob_changed(nuke.thisNode(), nuke.thisKnob())"


def create_node() -> nuke.Group:
    """Menu entry: a BufferAnytime node fed by the selected node."""
    selected = nuke.selectedNodes()
    number = next(i for i in range(1, 100_000) if nuke.toNode(f"BufferAnytime{i}") is None)
    group = build_node(f"BufferAnytime{number}")
    if selected:
        group.setInput(0, selected[-1])
    return group


def build_node(name: str = "BufferAnytime1") -> nuke.Group:
    group = nuke.nodes.Group(name=name)
    _add_knobs(group)
    with group:
        plate = nuke.nodes.Input(name=PLATE)
        write = nuke.nodes.Write(
            name=CACHE_WRITE,
            file_type="exr",
            datatype="32 bit float",
            compression="Zip (1 scanline)",
            channels="rgba",
            raw=True,
            create_directories=True,
            disable=True,  # enabled only while Generate renders the cache
        )
        write.setInput(0, plate)
        read = nuke.nodes.Read(name=PASSES_READ, raw=True, before="black", after="black")
        copy = nuke.nodes.Copy(name=COPY, bbox="B side", disable=True)
        copy.setInput(0, plate)  # B: the plate stream, whose format and pixel aspect the output keeps
        copy.setInput(1, read)  # A: the generated passes
        output = nuke.nodes.Output(name=OUTPUT)
        output.setInput(0, copy)
    group["knobChanged"].setValue(_KNOB_CHANGED)
    return group


def _add_knobs(group: nuke.Group) -> None:
    """The job knobs (one per host field of RenderJob, see job_knobs) around the node's own: frame
    range, layer names, server, cache, the buttons and the status line."""
    marker = nuke.String_Knob(NODE_MARKER, "")
    marker.setFlag(nuke.INVISIBLE)
    root = nuke.root()
    group.addKnob(nuke.Tab_Knob("bufferany", "BufferAnytime"))
    group.addKnob(marker)
    job_knobs.add_job_knobs(group, advanced=False)
    knobs: list[nuke.Knob] = [
        nuke.Boolean_Knob("use_input_range", "use input range", True),
        nuke.Int_Knob("first_frame", "frame range"),
        nuke.Int_Knob("last_frame", ""),
        nuke.String_Knob("depth_layer", "depth layer", conventions.DEPTH_LAYER),
        nuke.String_Knob("normal_layer", "normal layer", conventions.NORMAL_LAYER),
        nuke.File_Knob("server", "server discovery file"),
        nuke.Boolean_Knob("start_server", "start server if needed", False),
        nuke.File_Knob("cache_dir", "cache folder"),
        nuke.Boolean_Knob("force", "regenerate even if cached", False),
        nuke.PyScript_Knob("generate", "Generate", _GENERATE),
        nuke.PyScript_Knob("cancel", "Cancel", _CANCEL),
        nuke.Text_Knob("status", "status", "not generated"),
    ]
    for knob in knobs:
        group.addKnob(knob)
    group.addKnob(nuke.Tab_Knob("advanced", "Advanced"))
    job_knobs.add_job_knobs(group, advanced=True)
    group["first_frame"].setValue(root.firstFrame())
    group["last_frame"].setValue(root.lastFrame())
    group["last_frame"].clearFlag(nuke.STARTLINE)
    group["cancel"].clearFlag(nuke.STARTLINE)
    tips = {
        "use_input_range": "render the input's whole frame range instead of the range below",
        "server": "the server's discovery file; empty: $BUFFERANY_SERVER_FILE or ~/.bufferany/server.json",
        "cache_dir": "where plate frames and passes are cached; empty: $BUFFERANY_NUKE_CACHE or "
        "~/.bufferany/nuke_cache",
    }
    for name, tip in tips.items():
        group[name].setTooltip(tip)
    # the plate reaches the server as the Write renders it: raw, in the script's working space
    colorspace = group.knob("input_colorspace")
    if colorspace is not None:
        colorspace.setTooltip(
            colorspace.tooltip() + " (the cache holds the plate raw, in the script's working space)"
        )


def is_bufferany_node(node: nuke.Node | None) -> bool:
    return node is not None and node.knob(NODE_MARKER) is not None


def internal(group: nuke.Group, name: str) -> nuke.Node:
    with group:
        found = nuke.toNode(name)
    if found is None:
        raise RuntimeError(f"{group.fullName()}: internal node {name} is missing; recreate the node")
    return found


def selected_passes(group: nuke.Group) -> tuple[str, ...]:
    return PASS_CHOICES[str(group["passes"].value())]


def channel_pairs(group: nuke.Group) -> list[tuple[str, str]]:
    """(channel in the passes file, channel in the stream) for the selected passes and layer names."""
    passes = selected_passes(group)
    pairs: list[tuple[str, str]] = []
    if "depth" in passes:
        layer = str(group["depth_layer"].value())
        pairs.append((conventions.DEPTH_CHANNEL, conventions.depth_channel(layer)))
        _ensure_layer(layer, (conventions.depth_channel(layer),))
    if "normal" in passes:
        layer = str(group["normal_layer"].value())
        stream = conventions.normal_channels(layer)
        # (no zip(strict=): Nuke 14 runs Python 3.9)
        pairs.extend((channel, stream[i]) for i, channel in enumerate(conventions.NORMAL_CHANNELS))
        _ensure_layer(layer, stream)
    return pairs


def _ensure_layer(layer: str, channels: tuple[str, ...]) -> None:
    if layer not in nuke.layers():
        nuke.Layer(layer, list(channels))


def apply_layers(group: nuke.Group) -> None:
    """Point the Copy at the selected passes under the chosen layer names."""
    copy = internal(group, COPY)
    pairs = channel_pairs(group)
    for slot in range(COPY_SLOTS):
        source, target = pairs[slot] if slot < len(pairs) else ("none", "none")
        copy[f"from{slot}"].setValue(source)
        copy[f"to{slot}"].setValue(target)


def link_passes(group: nuke.Group, passes_pattern: str, first: int, last: int) -> None:
    """Read the generated passes (frame numbers equal the plate's) and merge them into the stream."""
    read = internal(group, PASSES_READ)
    read["file"].setValue(passes_pattern)
    for knob in ("first", "origfirst"):
        read[knob].setValue(first)
    for knob in ("last", "origlast"):
        read[knob].setValue(last)
    apply_layers(group)
    internal(group, COPY)["disable"].setValue(False)


def knob_changed(group: nuke.Node, knob: nuke.Knob) -> None:
    """Group knobChanged callback: renamed layers or other passes re-wire the Copy at once."""
    if knob.name() not in LAYER_KNOBS or not isinstance(group, nuke.Group):
        return
    try:
        apply_layers(group)
    except ValueError as exc:
        group["status"].setValue(f"error: {exc}")
