"""A small stand-in for Nuke's `nuke` module: only the calls the BufferAnytime plugin makes, with the
signatures of the `types-nuke` stubs.

Images are real: Read loads EXR frames through OpenImageIO, Write.execute writes them back, Copy
moves channels, Groups evaluate through their Input and Output nodes, so the plugin's internal graph
really runs. Nuke's threading rule is enforced: any node or knob call off the main thread raises
(and is recorded); `executeInMainThread` queues work the test pumps with `_pump`. Helpers for tests
start with an underscore. numpy and OpenImageIO load only when pixels are touched, so the plugin can
be imported with this module in an interpreter that has neither (as Nuke's has no numpy of ours).
"""

from __future__ import annotations

import os
import queue
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


GUI = True
INVISIBLE = 0x400
STARTLINE = 0x1000
INPUTS = 0x1
HIDDEN_INPUTS = 0x2
EXPRESSIONS = 0x4


class OffMainThreadError(RuntimeError):
    pass


def _main_only(what: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        _state.violations.append(f"{what} from thread {threading.current_thread().name}")
        raise OffMainThreadError(f"nuke: {what} called off the main thread")


# --- images ----------------------------------------------------------------------------------------
_TO_NUKE = {"R": "rgba.red", "G": "rgba.green", "B": "rgba.blue", "A": "rgba.alpha"}
_TO_FILE = {v: k for k, v in _TO_NUKE.items()}
_RGBA = tuple(_TO_NUKE.values())


@dataclass
class _Image:
    channels: dict[str, np.ndarray]  # Nuke channel name -> (H, W) float32
    data_window: tuple[int, int, int, int]  # x, y, width, height (OIIO spec)
    full_window: tuple[int, int, int, int]
    pixel_aspect: float
    metadata: dict[str, Any] = field(default_factory=dict)

    def black(self) -> _Image:
        import numpy as np

        return _Image(
            {k: np.zeros_like(v) for k, v in self.channels.items()},
            self.data_window,
            self.full_window,
            self.pixel_aspect,
        )


def _frame_path(pattern: str, frame: int) -> str:
    pattern = re.sub(r"#+", lambda m: f"%0{len(m.group(0))}d", pattern)
    return re.sub(r"%0?(\d*)d", lambda m: f"{frame:0{m.group(1) or 1}d}", pattern)


def _read_exr(path: str) -> _Image:
    import numpy as np
    import OpenImageIO as oiio

    inp = oiio.ImageInput.open(path)
    if inp is None:
        raise RuntimeError(f"Read: cannot open {path}: {oiio.geterror()}")
    spec = inp.spec()
    pixels = inp.read_image(0, 0, 0, spec.nchannels, "float")
    inp.close()
    channels = {
        _TO_NUKE.get(name, name): np.array(pixels[:, :, i]) for i, name in enumerate(spec.channelnames)
    }
    return _Image(
        channels,
        (spec.x, spec.y, spec.width, spec.height),
        (spec.full_x, spec.full_y, spec.full_width, spec.full_height),
        float(spec.get_float_attribute("PixelAspectRatio", 1.0)),
    )


_COMPRESSIONS = {
    "Zip (1 scanline)": "zips",
    "Zip (16 scanlines)": "zip",
    "PIZ Wavelet (32 scanlines)": "piz",
    "none": "none",
}
_DATATYPES = {"32 bit float": "float", "16 bit half": "half"}


def _write_exr(path: str, image: _Image, names: list[str], datatype: str, compression: str) -> None:
    import numpy as np
    import OpenImageIO as oiio

    x, y, width, height = image.data_window
    spec = oiio.ImageSpec(width, height, len(names), _DATATYPES[datatype])
    spec.x, spec.y = x, y
    spec.full_x, spec.full_y, spec.full_width, spec.full_height = image.full_window
    spec.channelnames = tuple(_TO_FILE.get(n, n) for n in names)
    spec.attribute("compression", _COMPRESSIONS[compression])
    spec.attribute("PixelAspectRatio", float(image.pixel_aspect))
    out = oiio.ImageOutput.create(path)
    if out is None or not out.open(path, spec):
        raise RuntimeError(f"Write: cannot write {path}: {oiio.geterror()}")
    out.write_image(np.stack([image.channels[n] for n in names], axis=-1).astype(np.float32))
    out.close()


# --- knobs -----------------------------------------------------------------------------------------
class Knob:
    _default: Any = ""

    def __init__(self, name: str, label: str = "", value: Any = None, *args: Any, **kwargs: Any) -> None:
        self._name, self._label = name, label or name
        self._value = self._default if value is None else value
        self._initial = self._value
        self._flags = 0
        self._tooltip = ""
        self._node: Node | None = None
        self._expression: str | None = None

    def Class(self) -> str:
        return type(self).__name__

    def name(self) -> str:
        return self._name

    def label(self) -> str:
        return self._label

    def node(self) -> Node:
        assert self._node is not None
        return self._node

    def value(self, *args: Any) -> Any:
        _main_only(f"{self._name}.value()")
        if self._expression is not None:
            return self.getValueAt(frame())
        return self._value

    def getValue(self, *args: Any) -> Any:
        return self.value()

    def setValue(self, val: Any, *args: Any) -> Any:
        _main_only(f"{self._name}.setValue()")
        self._value = self._coerce(val)
        self._expression = None  # as in Nuke: a value typed in replaces the expression
        return True

    def setExpression(self, expression: str, index: int = -1, view: str | None = None) -> bool:
        """Nuke's expression language as far as the tests use it: arithmetic over numbers, `frame`,
        and other knobs as `Node.knob`, `parent.knob` or `root.knob` (`Node` in the same Group)."""
        _main_only(f"{self._name}.setExpression()")
        self._expression = expression
        return True

    def hasExpression(self, index: int = -1) -> bool:
        _main_only(f"{self._name}.hasExpression()")
        return self._expression is not None

    def isAnimated(self, channel: int = -1) -> bool:
        return False  # the fake has no keyframes: a knob varies over time through an expression only

    def getValueAt(self, frame: float, index: int = -1, view: str | None = None) -> Any:
        _main_only(f"{self._name}.getValueAt()")
        if self._expression is None:
            return self._value

        def knob_value(match: re.Match[str]) -> str:
            knob = _referenced_knob(self.node(), match.group(0))
            return repr(float(knob.getValueAt(frame))) if knob is not None else match.group(0)

        code = _REFERENCE.sub(knob_value, self._expression)
        value = eval(code, {"__builtins__": {}}, {"frame": float(frame)})  # noqa: S307 (test fake)
        return self._coerce(value)

    def _coerce(self, val: Any) -> Any:
        return val

    def setFlag(self, flag: int) -> None:
        self._flags |= flag

    def clearFlag(self, flag: int) -> None:
        self._flags &= ~flag

    def getFlag(self, flag: int) -> bool:
        return bool(self._flags & flag)

    def setTooltip(self, tooltip: str) -> None:
        self._tooltip = tooltip

    def tooltip(self) -> str:
        return self._tooltip

    def toScript(self, quote: bool = False, context: Any = None) -> str:
        _main_only(f"{self._name}.toScript()")
        if self._expression is not None:
            return "{{%s}}" % self._expression  # noqa: UP031 (Nuke's own way of writing an expression)
        return str(self._value)


_REFERENCE = re.compile(r"\b[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")


def _referenced_node(owner: Node, reference: str) -> Node | None:
    """The node an expression's `Name.knob` names, seen from `owner` (Nuke's rules, simplified)."""
    first = reference.split(".", 1)[0]
    if first == "parent":
        return owner.parent()
    if first == "root":
        return _state.root
    if first == "this":
        return owner
    return owner.parent().node(first)


def _referenced_knob(owner: Node, reference: str) -> Knob | None:
    node = _referenced_node(owner, reference)
    parts = reference.split(".")
    return node.knob(parts[1]) if node is not None and len(parts) > 1 else None


class String_Knob(Knob):
    def _coerce(self, val: Any) -> Any:
        return str(val)


class EvalString_Knob(String_Knob):
    pass


class Multiline_Eval_String_Knob(EvalString_Knob):
    pass


class File_Knob(EvalString_Knob):
    def evaluate(self, *args: Any, **kwargs: Any) -> Any:
        """The value with TCL expanded, as Nuke does for `[getenv X]`, `$env(X)` and `[value root.name]`
        (`value()` returns the text as typed)."""
        _main_only(f"{self._name}.evaluate()")
        text = str(self._value)
        text = re.sub(r"\[getenv (\w+)\]", lambda m: os.environ.get(m.group(1), ""), text)
        text = re.sub(r"\$env\((\w+)\)", lambda m: os.environ.get(m.group(1), ""), text)
        return text.replace("[value root.name]", str(_state.root["name"].value()))


class Text_Knob(Knob):
    pass


class Tab_Knob(Knob):
    pass


class Int_Knob(Knob):
    _default = 0

    def _coerce(self, val: Any) -> Any:
        if isinstance(val, float) and not val.is_integer():
            raise TypeError(f"{self._name}: an integer knob cannot hold {val}")
        return int(val)


class ColorChip_Knob(Int_Knob):
    """A node's colour in the DAG (0xRRGGBBAA; 0: the class's default)."""


class Double_Knob(Knob):
    _default = 0.0

    def _coerce(self, val: Any) -> Any:
        return float(val)


class Boolean_Knob(Knob):
    _default = False

    def _coerce(self, val: Any) -> Any:
        return bool(val)


class Disable_Knob(Boolean_Knob):
    pass


class Enumeration_Knob(Knob):
    def __init__(
        self, name: str, label: str = "", values: list[str] | None = None, *args: Any, **kwargs: Any
    ):
        self._values = list(values or [])
        super().__init__(name, label, self._values[0] if self._values else "")

    def values(self) -> list[str]:
        return list(self._values)

    def _coerce(self, val: Any) -> Any:
        if isinstance(val, int) and not isinstance(val, bool):
            return self._values[val]
        if val not in self._values:
            raise ValueError(f"{self._name}: {val!r} is not one of {self._values}")
        return val


class Channel_Knob(Knob):
    def _coerce(self, val: Any) -> Any:
        if val != "none" and val.split(".", 1)[0] not in _state.layers:
            raise ValueError(f"{self._name}: channel {val!r} is in no layer (create it with nuke.Layer)")
        return val


class Script_Knob(String_Knob):
    def __init__(self, name: str, label: str = "", command: str = "", *args: Any, **kwargs: Any):
        super().__init__(name, label, command)

    def command(self) -> str:
        return str(self._value)

    def execute(self) -> None:
        """What clicking the button does: run its command with thisNode() set."""
        _main_only(f"{self._name}.execute()")
        _run_script(self.command(), self.node(), self)


class PyScript_Knob(Script_Knob):
    pass


class _ReloadKnob(Script_Knob):
    """A Read's Reload button: drops the frames the Read holds in memory."""

    def execute(self) -> None:
        _main_only(f"{self._name}.execute()")
        node = self.node()
        assert isinstance(node, _Read)
        node._reload()


def _run_script(code: str, node: Node, knob: Knob) -> None:
    _state.this.append((node, knob))
    try:
        exec(code, {"nuke": sys.modules[__name__]})
    finally:
        _state.this.pop()


# --- nodes -----------------------------------------------------------------------------------------
class Format:
    def __init__(self, width: int, height: int, pixel_aspect: float = 1.0, name: str = "") -> None:
        self._w, self._h, self._pa, self._name = width, height, pixel_aspect, name

    def width(self) -> int:
        return self._w

    def height(self) -> int:
        return self._h

    def pixelAspect(self) -> float:
        return self._pa

    def name(self) -> str:
        return self._name


class FrameRange:
    def __init__(self, first: int, last: int) -> None:
        self._first, self._last = first, last

    def first(self) -> int:
        return self._first

    def last(self) -> int:
        return self._last

    def frames(self) -> int:
        return self._last - self._first + 1

    def increment(self) -> int:
        return 1


class Node:
    _knob_specs: tuple[Knob, ...] = ()

    def __init__(self, cls: str, parent: Group | None) -> None:
        self._class, self._parent = cls, parent
        self._knobs: dict[str, Knob] = {}
        self._inputs: list[Node | None] = []
        for knob in (
            String_Knob("name"),
            Disable_Knob("disable"),
            Boolean_Knob("selected"),
            Int_Knob("xpos"),
            Int_Knob("ypos"),
            Multiline_Eval_String_Knob("label"),
            ColorChip_Knob("tile_color"),
            String_Knob("knobChanged"),
            String_Knob("updateUI"),
            *self._make_knobs(),
        ):
            self._attach(knob)
        self._knobs["knobChanged"].setFlag(INVISIBLE)
        self._knobs["updateUI"].setFlag(INVISIBLE)

    def _make_knobs(self) -> list[Knob]:
        return []

    def _attach(self, knob: Knob) -> None:
        knob._node = self
        self._knobs[knob.name()] = knob

    def Class(self) -> str:
        return self._class

    def name(self) -> str:
        return str(self._knobs["name"]._value)

    def setName(self, name: str, uncollide: bool = True, updateExpressions: bool = False) -> None:
        _main_only("setName()")
        self._knobs["name"].setValue(name)

    def fullName(self) -> str:
        if self._parent is None or isinstance(self._parent, Root):
            return self.name()
        return f"{self._parent.fullName()}.{self.name()}"

    def parent(self) -> Group:
        assert self._parent is not None
        return self._parent

    def knob(self, p: str | int, follow_link: bool = False) -> Knob | None:
        _main_only("knob()")
        return self._knobs.get(str(p))

    def knobs(self) -> dict[str, Knob]:
        return dict(self._knobs)

    def __getitem__(self, name: str) -> Knob:
        _main_only(f"{self.name()}[{name!r}]")
        if name not in self._knobs:
            raise NameError(f"knob {name} does not exist")
        return self._knobs[name]

    def addKnob(self, knob: Knob) -> None:
        _main_only("addKnob()")
        if knob.name() in self._knobs:
            raise ValueError(f"knob {knob.name()} exists")
        self._attach(knob)

    def removeKnob(self, knob: Knob) -> None:
        _main_only("removeKnob()")
        if self._knobs.get(knob.name()) is not knob:
            raise ValueError(f"knob {knob.name()} is not on {self.name()}")
        del self._knobs[knob.name()]
        knob._node = None

    def input(self, index: int) -> Node | None:
        _main_only("input()")
        return self._inputs[index] if index < len(self._inputs) else None

    def inputs(self) -> int:
        return len(self._inputs)

    def setInput(self, i: int, node: Node | None) -> bool:
        _main_only("setInput()")
        while len(self._inputs) <= i:
            self._inputs.append(None)
        self._inputs[i] = node
        return True

    def dependencies(self, mask: int = INPUTS) -> list[Node]:
        """Inputs (INPUTS), and with EXPRESSIONS the nodes this node's knob expressions refer to."""
        _main_only("dependencies()")
        found = [n for n in self._inputs if n is not None] if mask & INPUTS else []
        if mask & EXPRESSIONS:
            for knob in self._knobs.values():
                for reference in _REFERENCE.findall(knob._expression or ""):
                    linked = _referenced_node(self, reference)
                    if linked is not None and linked is not self and linked not in found:
                        found.append(linked)
        return found

    def setSelected(self, selected: bool) -> None:
        self["selected"].setValue(selected)

    def isSelected(self) -> bool:
        return bool(self["selected"].value())

    def setXYpos(self, x: int, y: int) -> None:
        self["xpos"].setValue(x)
        self["ypos"].setValue(y)

    def frameRange(self) -> FrameRange:
        _main_only("frameRange()")
        upstream = self.input(0)
        if upstream is None:
            return FrameRange(root().firstFrame(), root().lastFrame())
        return upstream.frameRange()

    def fileDependencies(self, start: int, end: int) -> list[list[Any]]:
        _main_only("fileDependencies()")
        found: list[list[Any]] = []
        for upstream in self._upstream():
            found.extend(upstream.fileDependencies(start, end))
        return found

    def _upstream(self) -> list[Node]:
        return [n for n in self._inputs if n is not None]

    def format(self) -> Format:
        image = self._render(self.frameRange().first())
        return Format(image.full_window[2], image.full_window[3], image.pixel_aspect)

    def pixelAspect(self) -> float:
        return self.format().pixelAspect()

    def _render(self, frame: int) -> _Image:
        """Pass-through: the image of input 0 (Dot, Output, disabled nodes)."""
        upstream = self.input(0)
        if upstream is None:
            raise RuntimeError(f"{self.fullName()}: no input")
        return upstream._render(frame)


class _Read(Node):
    def _make_knobs(self) -> list[Knob]:
        return [
            File_Knob("file"),
            Int_Knob("first", value=1),
            Int_Knob("last", value=1),
            Int_Knob("origfirst", value=1),
            Int_Knob("origlast", value=1),
            Enumeration_Knob("before", values=["hold", "black", "error"]),
            Enumeration_Knob("after", values=["hold", "black", "error"]),
            Enumeration_Knob("on_error", values=["error", "black"]),
            Boolean_Knob("raw"),
            _ReloadKnob("reload", "Reload"),
        ]

    def frameRange(self) -> FrameRange:
        return FrameRange(int(self["first"].value()), int(self["last"].value()))

    def _reload(self) -> None:
        self._cache.clear()

    def fileDependencies(self, start: int, end: int) -> list[list[Any]]:
        first, last = max(start, self["first"].value()), min(end, self["last"].value())
        return [[self, [_frame_path(self["file"].evaluate(), f) for f in range(first, last + 1)]]]

    def _render(self, frame: int) -> _Image:
        first, last = self["first"].value(), self["last"].value()
        if frame < first or frame > last:
            mode = self["before" if frame < first else "after"].value()
            if mode == "error":
                raise RuntimeError(f"{self.fullName()}: frame {frame} is outside {first}-{last}")
            held = self._load(min(max(frame, first), last))
            return held if mode == "hold" else held.black()
        return self._load(frame)

    def _load(self, frame: int) -> _Image:
        """As Nuke's Read: a frame once loaded is shown from memory until the file name changes or
        the Reload button is pressed, even when the file on disk was rewritten."""
        path = _frame_path(self["file"].evaluate(), frame)
        if path in self._cache:
            return self._cache[path]
        if not os.path.isfile(path):
            raise RuntimeError(f"{self.fullName()}: {path}: no such file")
        self._cache[path] = image = _read_exr(path)
        return image

    @property
    def _cache(self) -> dict[str, _Image]:
        return self.__dict__.setdefault("_frames", {})


class _Write(Node):
    def _make_knobs(self) -> list[Knob]:
        return [
            File_Knob("file"),
            Enumeration_Knob("file_type", values=["", "exr"]),
            Enumeration_Knob("datatype", values=["16 bit half", "32 bit float"]),
            Enumeration_Knob("compression", values=list(_COMPRESSIONS)),
            Enumeration_Knob("channels", values=["rgb", "rgba", "all"]),
            Boolean_Knob("raw"),
            Boolean_Knob("create_directories"),
        ]

    def _execute(self, frames: range) -> None:
        if self["disable"].value():
            raise RuntimeError(f"{self.fullName()} is disabled")
        if self["file_type"].value() != "exr":
            raise RuntimeError(f"{self.fullName()}: this fake writes EXR only")
        for frame in frames:
            image = self._render(frame)
            wanted = self["channels"].value()
            names = [
                n for n in image.channels if wanted == "all" or n in _RGBA[: 3 if wanted == "rgb" else 4]
            ]
            path = _frame_path(self["file"].value(), frame)
            folder = os.path.dirname(path)
            if not os.path.isdir(folder):
                if not self["create_directories"].value():
                    raise RuntimeError(f"{self.fullName()}: folder {folder} does not exist")
                os.makedirs(folder)
            _write_exr(path, image, names, self["datatype"].value(), self["compression"].value())
            _state.written.append(path)


class _Copy(Node):
    def _make_knobs(self) -> list[Knob]:
        pairs: list[Knob] = []
        for slot in range(4):
            default = "rgba.alpha" if slot == 0 else "none"
            pairs += [Channel_Knob(f"from{slot}", value=default), Channel_Knob(f"to{slot}", value=default)]
        return [*pairs, Enumeration_Knob("bbox", values=["union", "B side", "A side", "intersection"])]

    def _render(self, frame: int) -> _Image:
        import numpy as np

        b = self.input(0)
        if b is None:
            raise RuntimeError(f"{self.fullName()}: no B input")
        image = b._render(frame)
        if self["disable"].value():
            return image
        a = self.input(1)
        if a is None:
            raise RuntimeError(f"{self.fullName()}: no A input")
        source = a._render(frame)
        channels = dict(image.channels)
        for slot in range(4):
            src, dst = self[f"from{slot}"].value(), self[f"to{slot}"].value()
            if src == "none" or dst == "none":
                continue
            if source.data_window != image.data_window:
                raise RuntimeError(f"{self.fullName()}: A and B data windows differ")
            channels[dst] = source.channels.get(src, np.zeros_like(next(iter(image.channels.values()))))
        return _Image(channels, image.data_window, image.full_window, image.pixel_aspect, image.metadata)


class _Multiply(Node):
    def _make_knobs(self) -> list[Knob]:
        return [Double_Knob("value", value=1.0)]

    def _render(self, frame: int) -> _Image:
        image = super()._render(frame)
        gain = float(self["value"].value())
        channels = {k: v * gain if k in _RGBA[:3] else v for k, v in image.channels.items()}
        return _Image(channels, image.data_window, image.full_window, image.pixel_aspect)


def _ocio_config() -> str:
    """The OCIO config the script uses, as OpenColorIO opens it: Nuke's bundled configs stand in for
    OCIO's built-in ones (nuke-default: tests/fake_nuke/ocio/nuke-default.ocio, same names)."""
    chosen = str(_state.root["OCIO_config"].value())
    if chosen == "custom":
        return str(_state.root["customOCIOConfigPath"].value())
    return _BUNDLED_CONFIGS[chosen]


_BUNDLED_CONFIGS = {
    "nuke-default": os.path.join(os.path.dirname(os.path.abspath(__file__)), "ocio", "nuke-default.ocio"),
    "fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1": "ocio://cg-config-v1.0.0_aces-v1.3_ocio-v2.1",
    "fn-nuke_studio-config-v1.0.0_aces-v1.3_ocio-v2.1": "ocio://studio-config-v1.0.0_aces-v1.3_ocio-v2.1",
}


class _OCIOColorSpace(Node):
    """Converts rgb from in_colorspace to out_colorspace with OpenColorIO (through OpenImageIO) under
    the script's config; alpha and other channels pass through."""

    def _make_knobs(self) -> list[Knob]:
        return [String_Knob("in_colorspace", value="scene_linear"), String_Knob("out_colorspace", value="scene_linear")]

    def _render(self, frame: int) -> _Image:
        import numpy as np
        import OpenImageIO as oiio

        image = super()._render(frame)
        if self["disable"].value():
            return image
        source, target = str(self["in_colorspace"].value()), str(self["out_colorspace"].value())
        config = _ocio_config()
        rgb = np.stack([image.channels[c] for c in _RGBA[:3]], axis=-1).astype(np.float32)
        converted = oiio.ImageBufAlgo.colorconvert(oiio.ImageBuf(rgb), source, target, False, "", "", config)
        if converted.has_error:
            raise RuntimeError(f"{self.fullName()}: OCIO: {converted.geterror()}")
        pixels = converted.get_pixels(oiio.FLOAT)
        channels = dict(image.channels)
        for i, name in enumerate(_RGBA[:3]):
            channels[name] = np.ascontiguousarray(pixels[:, :, i])
        return _Image(channels, image.data_window, image.full_window, image.pixel_aspect, image.metadata)


class _Crop(Node):
    """box = (x, y, r, t) in Nuke's coordinates (origin bottom left). With `intersect` off the output
    bounding box is the box exactly: pixels outside the input's bounding box are black."""

    def _make_knobs(self) -> list[Knob]:
        return [Knob("box", value=[0, 0, 0, 0]), Boolean_Knob("intersect"), Boolean_Knob("reformat"), Boolean_Knob("crop", value=True)]

    def _render(self, frame: int) -> _Image:
        import numpy as np

        image = super()._render(frame)
        if self["disable"].value():
            return image
        if self["reformat"].value() or self["intersect"].value():
            raise RuntimeError(f"{self.fullName()}: this fake crops with reformat and intersect off only")
        x, y, r, t = (int(v) for v in self["box"].value())
        full_h = image.full_window[1] + image.full_window[3]
        out = (x, full_h - t, r - x, t - y)  # OIIO data window: x, top y, width, height
        ix, iy, iw, ih = image.data_window
        channels = {}
        for name, plane in image.channels.items():
            canvas = np.zeros((out[3], out[2]), np.float32)
            x0, x1 = max(ix, out[0]), min(ix + iw, out[0] + out[2])
            y0, y1 = max(iy, out[1]), min(iy + ih, out[1] + out[3])
            if x0 < x1 and y0 < y1:
                canvas[y0 - out[1] : y1 - out[1], x0 - out[0] : x1 - out[0]] = plane[y0 - iy : y1 - iy, x0 - ix : x1 - ix]
            channels[name] = canvas
        return _Image(channels, out, image.full_window, image.pixel_aspect, image.metadata)


class _Expression(Node):
    """expr0..expr3 -> red, green, blue, alpha (an empty expression leaves its channel alone). The
    expressions use Nuke's syntax as far as it is Python's too: arithmetic, `clamp`, `abs`, channels
    as `layer.channel` or r/g/b/a, and the enclosing Group's knobs as `parent.knob`."""

    def _make_knobs(self) -> list[Knob]:
        return [String_Knob(f"expr{i}") for i in range(4)]

    def _render(self, frame: int) -> _Image:
        import numpy as np

        image = super()._render(frame)
        if self["disable"].value():
            return image
        zero = np.zeros_like(next(iter(image.channels.values())))
        layers: dict[str, Any] = {}
        for name, plane in image.channels.items():
            layer, _, channel = name.partition(".")
            layers.setdefault(layer, _Namespace()).__dict__[channel] = plane
        group = self.parent()
        knobs = _Namespace(**{n: k._value for n, k in group._knobs.items() if isinstance(k._value, (int, float))})
        names = {
            **layers,
            "r": image.channels.get("rgba.red", zero),
            "g": image.channels.get("rgba.green", zero),
            "b": image.channels.get("rgba.blue", zero),
            "a": image.channels.get("rgba.alpha", zero),
            "parent": knobs,
            "clamp": lambda v, lo=0.0, hi=1.0: np.clip(v, lo, hi),
            "abs": np.abs,
        }
        channels = dict(image.channels)
        for i, target in enumerate(_RGBA):
            code = str(self[f"expr{i}"].value()).strip()
            if code:
                value = eval(code, {"__builtins__": {}}, names)  # noqa: S307 (test fake: the plugin's own expressions)
                channels[target] = (zero + value).astype(np.float32)
        return _Image(channels, image.data_window, image.full_window, image.pixel_aspect, image.metadata)


class _Namespace:
    def __init__(self, **values: Any) -> None:
        self.__dict__.update(values)


class _TimeOffset(Node):
    def _make_knobs(self) -> list[Knob]:
        return [Int_Knob("time_offset")]

    def _shift(self) -> int:
        return int(self["time_offset"].value())

    def frameRange(self) -> FrameRange:
        upstream = super().frameRange()
        return FrameRange(upstream.first() + self._shift(), upstream.last() + self._shift())

    def fileDependencies(self, start: int, end: int) -> list[list[Any]]:
        return super().fileDependencies(start - self._shift(), end - self._shift())

    def _render(self, frame: int) -> _Image:
        return super()._render(frame - self._shift())


class _Delegating(Node):
    """A node whose image, range and files are another node's: a Group's Output, an Input's outer input."""

    def _source(self) -> Node:
        raise NotImplementedError

    def frameRange(self) -> FrameRange:
        return self._source().frameRange()

    def _upstream(self) -> list[Node]:
        return [self._source()]

    def _render(self, frame: int) -> _Image:
        return self._source()._render(frame)


class _Input(_Delegating):
    def _make_knobs(self) -> list[Knob]:
        return [Int_Knob("number")]

    def _source(self) -> Node:
        group = self.parent()
        upstream = group.input(int(self["number"].value()))
        if upstream is None:
            raise RuntimeError(f"{group.fullName()}: input {self['number'].value()} is not connected")
        return upstream


class Group(_Delegating):
    def __init__(self, cls: str, parent: Group | None) -> None:
        super().__init__(cls, parent)
        self._children: list[Node] = []

    def begin(self) -> Group:
        _main_only("begin()")
        _state.context.append(self)
        return self

    def end(self) -> None:
        _state.context.pop()

    def __enter__(self) -> Group:
        return self.begin()

    def __exit__(self, *exc: Any) -> None:
        self.end()

    def nodes(self) -> list[Node]:
        return list(self._children)

    def node(self, s: str) -> Node | None:
        return next((n for n in self._children if n.name() == s), None)

    def _source(self) -> Node:
        if self["disable"].value():  # a disabled Group passes its input through
            upstream = self.input(0)
        else:
            upstream = next((n for n in self._children if n.Class() == "Output"), None)
        if upstream is None:
            raise RuntimeError(f"{self.fullName()}: no Output node or input")
        return upstream


class Gizmo(Group):
    """A gizmo: a Group whose insides come from a .gizmo file (tests make one with `_gizmo`)."""


class Root(Group):
    def _make_knobs(self) -> list[Knob]:
        return [
            Int_Knob("first_frame", value=1),
            Int_Knob("last_frame", value=100),
            Knob("format"),
            Boolean_Knob("proxy"),
            Enumeration_Knob("colorManagement", values=["Nuke", "OCIO"]),
            Enumeration_Knob("OCIO_config", values=[*_BUNDLED_CONFIGS, "custom"]),
            File_Knob("customOCIOConfigPath"),
            String_Knob("workingSpaceLUT", value="linear"),
        ]

    def proxy(self, *args: Any, **kwargs: Any) -> Any:
        return bool(self["proxy"].value())

    def firstFrame(self) -> int:
        return int(self["first_frame"].value())

    def lastFrame(self) -> int:
        return int(self["last_frame"].value())

    def format(self) -> Format:
        return self["format"].value()

    def fullName(self) -> str:
        return "root"


class Layer:
    def __init__(self, name: str, channels: list[str]) -> None:
        _main_only("Layer()")
        if name in _state.layers and _state.layers[name] != list(channels):
            raise ValueError(f"layer {name} exists with channels {_state.layers[name]}")
        if any(c.split(".", 1)[0] != name for c in channels):
            raise ValueError(f"layer {name}: channels {channels} must be named {name}.<channel>")
        _state.layers[name] = list(channels)
        self._name = name

    def name(self) -> str:
        return self._name


_NODE_CLASSES: dict[str, type[Node]] = {
    "Read": _Read,
    "Write": _Write,
    "Copy": _Copy,
    "Input": _Input,
    "Group": Group,
    "Multiply": _Multiply,
    "TimeOffset": _TimeOffset,
    "OCIOColorSpace": _OCIOColorSpace,
    "Crop": _Crop,
    "Expression": _Expression,
}


class _Constructor:
    def __init__(self, cls: str) -> None:
        self._cls = cls

    def __call__(self, **knobs: Any) -> Node:
        _main_only(f"nodes.{self._cls}()")
        parent = _state.context[-1]
        made = _NODE_CLASSES.get(self._cls, Node)(self._cls, parent)
        taken = {n.name() for n in parent._children}
        name = knobs.pop("name", None)
        if name in taken:  # the strict reading: a script must not count on Nuke renaming for it
            raise ValueError(f"nodes.{self._cls}: the name {name} is already in use")
        if name is None:
            name = next(f"{self._cls}{i}" for i in range(1, 10_000) if f"{self._cls}{i}" not in taken)
        made._knobs["name"].setValue(name)
        for key, value in knobs.items():
            made[key].setValue(value)
        parent._children.append(made)
        return made


class Nodes:
    def __getattr__(self, item: str) -> _Constructor:
        return _Constructor(item)


nodes = Nodes()


# --- module functions ------------------------------------------------------------------------------
def root() -> Root:
    return _state.root


def toNode(s: str) -> Node | None:
    _main_only("toNode()")
    if s == "root":
        return _state.root
    group: Group = _state.root if "." in s else _state.context[-1]
    found: Node | None = None
    for part in s.split("."):
        found = group.node(part)
        if found is None:
            return None
        if isinstance(found, Group):
            group = found
    return found


def allNodes(
    filter: str | None = None, group: Group | None = None, recurseGroups: bool = False
) -> list[Node]:
    _main_only("allNodes()")
    found: list[Node] = []
    for n in (group or _state.context[-1]).nodes():
        if filter is None or n.Class() == filter:
            found.append(n)
        if recurseGroups and isinstance(n, Group):
            found.extend(allNodes(filter, n, recurseGroups=True))
    return found


def selectedNodes(filter: str | None = None) -> list[Node]:
    return [n for n in allNodes(filter) if n.isSelected()]


def layers(node: Node | None = None) -> list[str]:
    _main_only("layers()")
    return list(_state.layers)


def execute(
    nameOrNode: Node | str,
    start: int,
    end: int,
    incr: int = 1,
    views: Any = None,
    continueOnError: bool = False,
) -> None:
    _main_only("execute()")
    node = toNode(nameOrNode) if isinstance(nameOrNode, str) else nameOrNode
    if not isinstance(node, _Write):
        raise RuntimeError(f"execute: {nameOrNode} is not a Write node")
    _state.executed.append((node.fullName(), start, end))
    node._execute(range(start, end + 1, incr))


def frame(f: int | None = None) -> int:
    """The current frame; with `f`, go to frame `f` first."""
    if f is not None:
        _state.frame = int(f)
    return _state.frame


def executeInMainThread(call: Callable[..., Any], args: Any = (), kwargs: Any = None) -> None:
    if not isinstance(args, tuple):
        args = (args,)
    _state.main_queue.put((call, args, kwargs or {}))


def scriptOpen(filename: str | None = None) -> None:
    """Stand-in for loading a .nk file: the fake runs a Python file that builds the graph with `nuke`."""
    _main_only("scriptOpen()")
    assert filename is not None
    _state.root["name"].setValue(filename)
    with open(filename) as stream:
        exec(stream.read(), {"nuke": sys.modules[__name__]})


def scriptSave(filename: str | None = None) -> bool:
    """Records what a saved script would hold: every node's knob values."""
    _main_only("scriptSave()")
    snapshot = {
        n.fullName(): {k: knob._value for k, knob in n._knobs.items()} for n in allNodes(recurseGroups=True)
    }
    _state.saved.append((filename or _state.root.name(), snapshot))
    return True


def scriptSaveAs(filename: str | None = None, overwrite: int | bool = False) -> None:
    """Saves under a new name (recorded like scriptSave); refuses an existing file unless `overwrite`."""
    _main_only("scriptSaveAs()")
    assert filename is not None
    if os.path.exists(filename) and not overwrite:
        raise RuntimeError(f"scriptSaveAs: {filename} exists")
    scriptSave(filename)
    _state.root["name"].setValue(filename)
    with open(filename, "a"):
        pass


def scriptName() -> str:
    name = str(_state.root["name"].value())
    if not name:
        raise RuntimeError("script is not saved (no name)")
    return name


def scriptClose(*args: Any, **kwargs: Any) -> Any:
    """Runs the onScriptClose callbacks, then leaves an empty untitled script (as File > Close)."""
    _main_only("scriptClose()")
    for call, call_args, call_kwargs in list(_state.on_script_close):
        call(*call_args, **call_kwargs)
    callbacks = _state.on_script_close
    fmt = _state.root.format()
    _reset(_state.root.firstFrame(), _state.root.lastFrame(), fmt, gui=GUI)
    _state.on_script_close = callbacks
    return True


def addOnScriptClose(call: Callable[..., Any], args: Any = (), kwargs: Any = None, nodeClass: str = "Root") -> None:
    _state.on_script_close.append((call, tuple(args), dict(kwargs or {})))


def removeOnScriptClose(call: Callable[..., Any], args: Any = (), kwargs: Any = None, nodeClass: str = "Root") -> None:
    _state.on_script_close = [c for c in _state.on_script_close if c[0] != call]


def getOcioColorSpaces(*args: Any, **kwargs: Any) -> Any:
    """The colour space names of the script's OCIO config."""
    import OpenImageIO as oiio

    config = oiio.ColorConfig(_ocio_config())
    return list(config.getColorSpaceNames())


def thisNode() -> Node:
    return _state.this[-1][0]


def thisKnob() -> Knob:
    return _state.this[-1][1]


def message(prompt: str) -> None:
    _main_only("message()")
    _state.messages.append(prompt)


class ProgressTask:
    """Safe from any thread, as in Nuke. Tests press its cancel button with `_cancel()`."""

    def __init__(self, title: str) -> None:
        self.title, self.message, self.progress = title, "", 0
        self.history: list[int] = []
        self._cancelled = threading.Event()
        _state.tasks.append(self)

    def isCancelled(self) -> bool:
        return self._cancelled.is_set()

    def setMessage(self, message: str) -> None:
        self.message = message

    def setProgress(self, progress: int) -> None:
        if not isinstance(progress, int) or not 0 <= progress <= 100:
            raise ValueError(f"ProgressTask.setProgress({progress!r}): an int from 0 to 100")
        self.progress = progress
        self.history.append(progress)

    def _cancel(self) -> None:
        self._cancelled.set()


class Menu:
    def __init__(self, name: str) -> None:
        self._name = name
        self.items: dict[str, Any] = {}

    def addMenu(self, name: str, *args: Any, **kwargs: Any) -> Menu:
        return self.items.setdefault(name, Menu(name))

    def addCommand(self, name: str, command: str = "", *args: Any, **kwargs: Any) -> None:
        self.items[name] = command


def menu(name: str) -> Menu:
    return _state.menus.setdefault(name, Menu(name))


# --- test helpers ----------------------------------------------------------------------------------
class _State:
    def __init__(self, first: int, last: int, fmt: Format) -> None:
        self.root = Root("Root", None)
        self.root["first_frame"].setValue(first)
        self.root["last_frame"].setValue(last)
        self.root["format"].setValue(fmt)
        self.context: list[Group] = [self.root]
        self.layers = {"rgba": list(_RGBA), "depth": ["depth.Z"], "forward": ["forward.u", "forward.v"]}
        self.main_queue: queue.Queue = queue.Queue()
        self.this: list[tuple[Node, Knob]] = []
        self.violations: list[str] = []
        self.messages: list[str] = []
        self.tasks: list[ProgressTask] = []
        self.executed: list[tuple[str, int, int]] = []
        self.written: list[str] = []
        self.menus: dict[str, Menu] = {}
        self.saved: list[tuple[str, dict[str, dict[str, Any]]]] = []
        self.on_script_close: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = []
        self.frame = first


def _reset(first: int = 1, last: int = 100, fmt: Format | None = None, gui: bool = True) -> _State:
    global _state, GUI
    GUI = gui
    _state = _State(first, last, fmt or Format(2048, 1556))
    return _state


def _pump(until: Callable[[], bool], timeout: float = 60.0) -> None:
    """Run queued main-thread work until `until()` holds, as Nuke's event loop would."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() > deadline:
            raise TimeoutError("main-thread queue: condition not reached")
        try:
            call, args, kwargs = _state.main_queue.get(timeout=0.05)
        except queue.Empty:
            continue
        call(*args, **kwargs)


def _drain() -> None:
    while not _state.main_queue.empty():
        call, args, kwargs = _state.main_queue.get()
        call(*args, **kwargs)


def _user_set(knob: Knob, value: Any) -> None:
    """A user edit in the panel: set the knob, then run the node's knobChanged."""
    knob.setValue(value)
    code = knob.node()["knobChanged"].value()
    if code:
        _run_script(code, knob.node(), knob)


def _gizmo(cls: str, **knobs: Any) -> Gizmo:
    """A gizmo of class `cls` in the current context (Nuke loads its insides from cls.gizmo)."""
    _NODE_CLASSES.setdefault(cls, Gizmo)
    made = _Constructor(cls)(**knobs)
    assert isinstance(made, Gizmo)
    return made


def _update_ui(node: Node) -> None:
    """What Nuke does while a node's panel is open (frame changes, redraws): run its updateUI."""
    code = node["updateUI"].value()
    if code:
        _run_script(code, node, node["updateUI"])


def _image(node: Node, frame: int) -> _Image:
    """The image `node` outputs at `frame` (what a Viewer would show)."""
    _main_only("_image()")
    return node._render(frame)


_state = _State(1, 100, Format(2048, 1556))
