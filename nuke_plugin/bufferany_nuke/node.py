"""Build the BufferAnytime Group and wire the generated passes into its output stream.

Inside the Group: Input `Plate` -> Copy `CopyPasses` (B) -> Expression `Preview` -> Output, with Read
`PassesRead` on the Copy's A input. For the server: `Plate` -> Crop `ToFormat` (the format, not the
bounding box: overscan is cut, a smaller box padded black) -> OCIOColorSpace `ToModelSRGB` (see
colour.py) -> Write `CacheWrite`, half float RGB. The Copy stays disabled (plate passes through
untouched) until passes are linked; the Preview only while a preview is chosen. Main thread only.
"""

from __future__ import annotations

import uuid

import nuke

from bufferany_core import conventions
from bufferany_nuke import job_knobs
from bufferany_nuke.job_knobs import PASS_CHOICES

NODE_MARKER = "bufferany_node"  # hidden knob telling a BufferAnytime Group from any other Group
NODE_ID = "bufferany_uuid"  # hidden knob: the node's identity for jobs in flight (names change)
PLATE = "Plate"
TO_FORMAT = "ToFormat"
TO_SRGB = "ToModelSRGB"
CACHE_WRITE = "CacheWrite"
PASSES_READ = "PassesRead"
COPY = "CopyPasses"
PREVIEW = "Preview"
OUTPUT = "Output"

COPY_SLOTS = 4  # Nuke's Copy node copies at most four channels: depth.Z + N.X/Y/Z
LAYER_KNOBS = ("depth_layer", "normal_layer", "passes", "preview")
PREVIEWS = ("off", "depth", "depth false colour", "normals")

_GENERATE = "import bufferany_nuke; bufferany_nuke.generate(nuke.thisNode())"
_CANCEL = "import bufferany_nuke; bufferany_nuke.cancel(nuke.thisNode())"
_KNOB_CHANGED = "import bufferany_nuke; bufferany_nuke.knob_changed(nuke.thisNode(), nuke.thisKnob())"
_UPDATE_UI = "import bufferany_nuke; bufferany_nuke.update_ui(nuke.thisNode())"
_AUTO_RANGE = "import bufferany_nuke; bufferany_nuke.auto_range(nuke.thisNode())"
# knobs whose changes never make the passes stale (display, server, buttons, bookkeeping)
_NOT_STALE = frozenset(
    "status generate cancel auto_range force preview near far invert server server_host server_port "
    "server_timeout start_server label tile_color xpos ypos selected bufferany_linked bufferany_stale".split()
)


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
    fmt = nuke.root().format()
    with group:
        plate = nuke.nodes.Input(name=PLATE)
        to_format = nuke.nodes.Crop(name=TO_FORMAT, intersect=False, reformat=False, crop=True)
        to_format["box"].setValue([0, 0, fmt.width(), fmt.height()])
        to_format.setInput(0, plate)
        to_srgb = nuke.nodes.OCIOColorSpace(name=TO_SRGB)
        to_srgb.setInput(0, to_format)
        write = nuke.nodes.Write(
            name=CACHE_WRITE,
            file_type="exr",
            datatype="16 bit half",  # sRGB-encoded pixels: half is exact enough and a quarter of RGBA float
            compression="Zip (1 scanline)",
            channels="rgb",
            raw=True,
            create_directories=True,
            disable=True,  # enabled only while Generate renders the cache
        )
        write.setInput(0, to_srgb)
        read = nuke.nodes.Read(name=PASSES_READ, raw=True, before="black", after="black")
        copy = nuke.nodes.Copy(name=COPY, bbox="B side", disable=True)
        copy.setInput(0, plate)  # B: the plate stream, whose format and pixel aspect the output keeps
        copy.setInput(1, read)  # A: the generated passes
        preview = nuke.nodes.Expression(name=PREVIEW, disable=True)
        preview.setInput(0, copy)
        output = nuke.nodes.Output(name=OUTPUT)
        output.setInput(0, preview)
    group["knobChanged"].setValue(_KNOB_CHANGED)
    group["updateUI"].setValue(_UPDATE_UI)
    return group


def node_id(group: nuke.Node) -> str:
    """The node's identity, made once (a node from an older script, or a copy, gets one of its own)."""
    knob = group.knob(NODE_ID)
    if knob is None:
        knob = nuke.String_Knob(NODE_ID, "")
        knob.setFlag(nuke.INVISIBLE)
        group.addKnob(knob)
    value = str(knob.value())
    twins = [
        n for n in nuke.allNodes("Group", nuke.root(), recurseGroups=True)
        if n is not group and is_bufferany_node(n) and n.knob(NODE_ID) is not None and str(n[NODE_ID].value()) == value
    ]
    if not value or twins:  # copy-pasted nodes share the knob's value: the one generating gets a new one
        value = uuid.uuid4().hex
        knob.setValue(value)
    return value


def find_by_id(identity: str) -> nuke.Group | None:
    """The BufferAnytime node of the open script with this identity (None: deleted, or another script)."""
    for found in nuke.allNodes("Group", nuke.root(), recurseGroups=True):
        if isinstance(found, nuke.Group) and found.knob(NODE_ID) is not None and str(found[NODE_ID].value()) == identity:
            return found
    return None


def _add_knobs(group: nuke.Group) -> None:
    """The job knobs (one per host field of RenderJob, see job_knobs) around the node's own: frame
    range, layer names, server, cache, the buttons and the status line."""
    marker = nuke.String_Knob(NODE_MARKER, "")
    marker.setFlag(nuke.INVISIBLE)
    identity = nuke.String_Knob(NODE_ID, "")
    identity.setFlag(nuke.INVISIBLE)
    root = nuke.root()
    group.addKnob(nuke.Tab_Knob("bufferany", "BufferAnytime"))
    group.addKnob(marker)
    group.addKnob(identity)
    identity.setValue(uuid.uuid4().hex)
    job_knobs.add_job_knobs(group, advanced=False)
    knobs: list[nuke.Knob] = [
        nuke.Boolean_Knob("use_input_range", "use input range", True),
        nuke.Int_Knob("first_frame", "frame range"),
        nuke.Int_Knob("last_frame", ""),
        nuke.String_Knob("depth_layer", "depth layer", conventions.DEPTH_LAYER),
        nuke.String_Knob("normal_layer", "normal layer", conventions.NORMAL_LAYER),
        nuke.Boolean_Knob("plate_is_srgb", "plate is display-referred sRGB", False),
        nuke.String_Knob("model_colorspace", "sRGB colour space"),
        nuke.Enumeration_Knob("preview", "preview", list(PREVIEWS)),
        nuke.Double_Knob("near", "depth near"),
        nuke.Double_Knob("far", "far"),
        nuke.Boolean_Knob("invert", "invert", False),
        nuke.PyScript_Knob("auto_range", "auto range", _AUTO_RANGE),
        nuke.File_Knob("server", "server discovery file"),
        nuke.String_Knob("server_host", "server host"),
        nuke.Int_Knob("server_port", "port"),
        nuke.Int_Knob("server_timeout", "server timeout (s)"),
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
    group["near"].setValue(0.0)
    group["far"].setValue(1.0)
    group["server_timeout"].setValue(30)
    for name in ("last_frame", "cancel", "far", "invert", "auto_range", "server_port"):
        group[name].clearFlag(nuke.STARTLINE)
    tips = {
        "use_input_range": "render the input's whole frame range instead of the range below",
        "plate_is_srgb": "the plate already holds display-referred sRGB pixels (a JPEG or PNG plate read "
        "raw, a graded review plate): no colour conversion before the models",
        "model_colorspace": "the OCIO colour space the plate is converted to for the models (sRGB "
        "encoding, no view transform); empty: found in the script's config (sRGB - Texture, sRGB, ...)",
        "preview": "show a pass in rgb for a quick look (the passes stay in their own channels): depth "
        "normalised between near and far, in grey or false colour, or normals as 0.5 + 0.5 N",
        "near": "depth value shown black (blue in false colour)",
        "far": "depth value shown white (red in false colour)",
        "invert": "swap near and far in the preview",
        "auto_range": "set near and far from the current frame's depth (percentiles 1 and 99, which the "
        "server records in each passes file): near is the closer end",
        "server": "the server's discovery file; empty: $BUFFERANY_SERVER_FILE or ~/.bufferany/server.json",
        "server_host": "a server on another machine (bufferany-server --host ...); empty: the one in the "
        "discovery file. Its token comes from $BUFFERANY_SERVER_TOKEN or the discovery file, never the script",
        "server_port": "the remote server's port (with server host)",
        "server_timeout": "seconds to wait for any answer from the server before giving up on it "
        "(a hung server never leaves the node generating)",
        "cache_dir": "where plate frames and passes are cached (TCL and $env expand); empty: the "
        "pipeline's callback, $BUFFERANY_NUKE_CACHE, a bufferany_cache folder beside the saved script, "
        "or ~/.bufferany/nuke_cache",
    }
    for name, tip in tips.items():
        group[name].setTooltip(tip)
    colorspace = group.knob("input_colorspace")
    if colorspace is not None:
        colorspace.setTooltip(
            colorspace.tooltip() + ". Empty (recommended): the node converts the plate from the working "
            "space to sRGB with OCIO itself. A name of the server's colour config: the plate goes to the "
            "server raw, in the working space, and the server converts from that name"
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
    """Point the Copy at the selected passes under the chosen layer names, and the preview at them."""
    copy = internal(group, COPY)
    pairs = channel_pairs(group)
    for slot in range(COPY_SLOTS):
        source, target = pairs[slot] if slot < len(pairs) else ("none", "none")
        copy[f"from{slot}"].setValue(source)
        copy[f"to{slot}"].setValue(target)
    apply_preview(group)


def preview_expressions(group: nuke.Group) -> tuple[str, str, str] | None:
    """The Preview's red, green and blue expressions (Nuke expression syntax), None when off or
    when the pass it shows is not selected."""
    mode = str(group["preview"].value())
    passes = selected_passes(group)
    if mode.startswith("depth") and "depth" in passes:
        z = conventions.depth_channel(str(group["depth_layer"].value()))
        v = f"clamp(({z} - parent.near) / (parent.far - parent.near))"
        v = f"({v} + parent.invert * (1 - 2 * {v}))"
        if mode == "depth":
            return v, v, v
        # a "jet" ramp: blue (near) -> cyan -> yellow -> red (far)
        return tuple(f"clamp(1.5 - abs(4 * {v} - {c}))" for c in (3, 2, 1))  # type: ignore[return-value]
    if mode == "normals" and "normal" in passes:
        x, y, z = conventions.normal_channels(str(group["normal_layer"].value()))
        return f"0.5 + 0.5 * {x}", f"0.5 + 0.5 * {y}", f"0.5 + 0.5 * {z}"
    return None


def apply_preview(group: nuke.Group) -> None:
    preview = internal(group, PREVIEW)
    expressions = preview_expressions(group)
    linked = not bool(internal(group, COPY)["disable"].value())
    preview["disable"].setValue(expressions is None or not linked)
    for slot, text in enumerate(expressions or ("", "", "")):
        preview[f"expr{slot}"].setValue(text)


def link_passes(
    group: nuke.Group, passes_pattern: str, first: int, last: int, *, keys: tuple[str, str] | None = None
) -> None:
    """Read the generated passes (frame numbers equal the plate's) and merge them into the stream.
    The Read reloads: Nuke would otherwise keep showing the frames it read before a regenerate.
    `keys` (passes key, plate key): what the passes were made from, for the stale badge (cleared)."""
    read = internal(group, PASSES_READ)
    read["file"].setValue(passes_pattern)
    for knob in ("first", "origfirst"):
        read[knob].setValue(first)
    for knob in ("last", "origlast"):
        read[knob].setValue(last)
    reload = read["reload"]
    if isinstance(reload, nuke.Script_Knob):  # the Read's Reload button
        reload.execute()
    internal(group, COPY)["disable"].setValue(False)
    apply_layers(group)
    if keys is not None:
        from bufferany_nuke import stale

        stale.remember(group, key=keys[0], plate_key=keys[1], first=first, last=last)


def knob_changed(group: nuke.Node, knob: nuke.Knob) -> None:
    """Group knobChanged callback: renamed layers or other passes re-wire the Copy at once; a changed
    setting or input (inputChange), or the panel opening (showPanel), checks the stale badge."""
    if not isinstance(group, nuke.Group):
        return
    if knob.name() in LAYER_KNOBS:
        try:
            apply_layers(group)
        except ValueError as exc:
            group["status"].setValue(f"error: {exc}")
    if knob.name() not in _NOT_STALE:
        from bufferany_nuke import stale

        stale.check(group)


def update_ui(group: nuke.Node) -> None:
    """Group updateUI callback (runs while the panel is open): the stale badge, throttled."""
    if isinstance(group, nuke.Group):
        from bufferany_nuke import stale

        stale.check_throttled(group)


def auto_range(group: nuke.Node) -> tuple[float, float] | None:
    """"auto range" button: near and far from the depth range the server recorded in the current
    frame's passes file (`bufferany/depth_range`: percentiles 1 and 99), read from its header with
    the standard library. Near is the closer end: the larger value for inverse depth (the default),
    the smaller for distance. Returns (near, far), or None with the reason on the status line."""
    import json

    from bufferany_core.conventions import HEADER, DepthConvention
    from bufferany_core.framepaths import frame_path
    from bufferany_nuke import exr_header

    if not isinstance(group, nuke.Group) or bool(internal(group, COPY)["disable"].value()):
        group["status"].setValue("auto range: no passes yet: Generate first")
        return None
    read = internal(group, PASSES_READ)
    first, last = int(read["first"].value()), int(read["last"].value())
    frame = min(max(nuke.frame(), first), last)
    try:
        path = frame_path(str(read["file"].value()), frame)
        header = exr_header.read_attributes(path)
        recorded = header.get(HEADER.depth_range)
        if not isinstance(recorded, str):
            raise ValueError(
                f"{path} records no depth range (made by an earlier version, or no depth pass): "
                "generate again with 'regenerate even if cached'"
            )
        numbers = json.loads(recorded)
        low, high = float(numbers["p01"]), float(numbers["p99"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        group["status"].setValue(f"auto range: {exc}")
        return None
    distance = header.get(HEADER.depth_convention) == DepthConvention.DISTANCE.value
    near, far = (low, high) if distance else (high, low)
    group["near"].setValue(near)
    group["far"].setValue(far)
    group["status"].setValue(f"auto range: near {near:.6g}, far {far:.6g} (frame {frame}, percentiles 1-99)")
    return near, far
