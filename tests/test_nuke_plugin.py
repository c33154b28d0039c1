"""The BufferAnytime Nuke node without a server: construction, knobs, layers, cache keys, threading,
batch errors, host safety and the type check against the `types-nuke` stubs."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from nuke_support import (
    FIRST,
    HEIGHT,
    LAST,
    PIXEL_ASPECT,
    PLUGIN,
    REPO,
    WIDTH,
    fresh_script,
    make_node,
    read_exr,
    srgb_encode,
    write_fake_script,
)

# isort: split
# (nuke_support has put the fake `nuke` and nuke_plugin/ on sys.path)
import bufferany_nuke
import nuke
from bufferany_nuke import batch, cache, node, settings
from bufferany_nuke.generate import _render_job

from bufferany_core.client import ServerNotFoundError
from bufferany_core.errors import BadArgumentsError, ExitCode, FrameRangeError


@pytest.fixture
def script(tmp_path, monkeypatch):
    yield from fresh_script(tmp_path, monkeypatch)


def test_plugin_loads_in_a_bare_python_and_finds_the_core(tmp_path):
    """init.py and menu.py run in an interpreter without site-packages (no numpy, no editable
    install): the plugin finds bufferany_core in its own checkout."""
    code = f"""
import sys
sys.path[:0] = [{str(REPO / "tests" / "fake_nuke")!r}, {str(PLUGIN)!r}]
exec(open({str(PLUGIN / "init.py")!r}).read())
exec(open({str(PLUGIN / "menu.py")!r}).read())
import bufferany_core, nuke
print(bufferany_core.__file__)
print(nuke.menu("Nodes").items["BufferAnytime"].items["BufferAnytime"])
print(sorted(m for m in ("numpy", "torch", "OpenImageIO") if m in sys.modules))
import json
print(json.dumps(sorted(m for m in sys.modules if m.startswith("bufferany_core"))))
"""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "BUFFERANY_CORE_PATH")}
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    core_file, command, heavy, core_modules = result.stdout.splitlines()
    assert core_file == str(REPO / "bufferany_core" / "__init__.py")
    assert "bufferany_nuke.create_node()" in command
    assert heavy == "[]"
    # the host side of the core only: the client (and its wire modules), conventions, errors, jobs,
    # atomic writes (discovery file, cache markers)
    allowed = {
        "",
        ".client",
        ".protocol",
        ".discovery",
        ".atomic",
        ".conventions",
        ".errors",
        ".jobs",
        ".framepaths",
    }
    assert {m.removeprefix("bufferany_core") for m in json.loads(core_modules)} <= allowed, core_modules

    bad = dict(env, BUFFERANY_CORE_PATH=str(tmp_path / "nowhere"))
    result = subprocess.run(
        [sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd=tmp_path, env=bad, timeout=60
    )
    assert result.returncode != 0
    assert "BUFFERANY_CORE_PATH" in result.stderr and "nowhere" in result.stderr


def test_node_has_its_knobs_and_passes_the_plate_through_before_generating(script):
    group = make_node()
    plate = group.input(0)
    assert plate is not None and plate.Class() == "Read"
    assert bufferany_nuke.is_bufferany_node(group) and not bufferany_nuke.is_bufferany_node(plate)
    assert group["passes"].value() == "depth and normal"
    assert group["depth_layer"].value() == "depth" and group["normal_layer"].value() == "N"
    assert (group["first_frame"].value(), group["last_frame"].value()) == (FIRST, LAST)
    assert group["use_input_range"].value() is True and group["stabilize"].value() == "auto"
    for button in ("generate", "cancel"):
        assert "bufferany_nuke" in group[button].command()
    assert make_node().name() == "BufferAnytime2"
    with group:
        write, read, copy = (nuke.toNode(n) for n in (node.CACHE_WRITE, node.PASSES_READ, node.COPY))
    assert write["datatype"].value() == "16 bit half" and write["file_type"].value() == "exr"
    assert write["channels"].value() == "rgb" and write["raw"].value()
    assert write["compression"].value() in ("Zip (1 scanline)", "Zip (16 scanlines)", "none")
    assert copy.input(0).Class() == "Input" and copy.input(1) is read and copy["disable"].value()
    assert write["disable"].value()  # a farm's "render all Writes" must not re-render the cache

    out = nuke._image(group, FIRST + 1)
    src = nuke._image(plate, FIRST + 1)
    assert sorted(out.channels) == sorted(src.channels)
    assert all(np.array_equal(out.channels[c], src.channels[c]) for c in src.channels)
    assert out.pixel_aspect == PIXEL_ASPECT


def _write_passes(folder, frames, *, data_window=(0, 0, 40, 24), aspect=PIXEL_ASPECT, header=None):
    """Pass files as the pipeline names them: depth.Z and N.X/Y/Z, one constant per frame; `header`:
    frame -> extra header attributes."""
    import OpenImageIO as oiio

    folder.mkdir(parents=True, exist_ok=True)
    x, y, w, h = data_window
    for frame in frames:
        spec = oiio.ImageSpec(w, h, 4, "float")
        spec.x, spec.y = x, y
        spec.channelnames = ("depth.Z", "N.X", "N.Y", "N.Z")
        spec.attribute("PixelAspectRatio", aspect)
        for name, value in ((header or {}).get(frame) or {}).items():
            spec.attribute(name, value)
        pixels = np.empty((h, w, 4), np.float32)
        pixels[..., 0] = frame  # depth.Z = the frame number: shows which file a frame came from
        pixels[..., 1:] = (0.0, 0.6, 0.8)
        path = str(folder / f"plate_buffers.{frame:04d}.exr")
        out = oiio.ImageOutput.create(path)
        assert out.open(path, spec)
        out.write_image(pixels)
        out.close()
    return str(folder / "plate_buffers.####.exr")


def test_linked_passes_join_the_stream_under_the_chosen_layer_names(script, tmp_path):
    group = make_node()
    pattern = _write_passes(tmp_path / "passes", range(FIRST, LAST + 1))
    node.link_passes(group, pattern, FIRST, LAST)
    out = nuke._image(group, FIRST + 2)
    assert {"depth.Z", "N.X", "N.Y", "N.Z", "rgba.red"} <= set(out.channels)
    assert np.all(out.channels["depth.Z"] == FIRST + 2)  # frame numbers line up with the plate's
    assert np.allclose(out.channels["N.Y"], 0.6)
    assert out.pixel_aspect == PIXEL_ASPECT and out.full_window == (0, 0, 40, 24)

    nuke._user_set(group["normal_layer"], "Nw")
    nuke._user_set(group["depth_layer"], "zdepth")
    out = nuke._image(group, FIRST)
    assert {"zdepth.Z", "Nw.X", "Nw.Y", "Nw.Z"} <= set(out.channels)
    assert "N.X" not in out.channels and np.all(out.channels["zdepth.Z"] == FIRST)

    nuke._user_set(group["passes"], "depth")
    assert "Nw.X" not in nuke._image(group, FIRST).channels

    nuke._user_set(group["passes"], "depth and normal")
    nuke._user_set(group["normal_layer"], "bad.name")
    assert "layer name 'bad.name'" in group["status"].value()


def test_frame_range_knobs_are_checked_against_the_input(script):
    group = make_node()
    group["use_input_range"].setValue(False)
    group["first_frame"].setValue(LAST)
    group["last_frame"].setValue(FIRST)
    assert bufferany_nuke.generate(group) is None  # GUI: the error goes to the node, nothing raises
    assert "first frame is after the last" in group["status"].value()

    group["first_frame"].setValue(FIRST - 10)
    group["last_frame"].setValue(LAST)
    with pytest.raises(FrameRangeError, match=f"outside the input's frames {FIRST}-{LAST}") as caught:
        bufferany_nuke.generate(group, synchronous=True)
    assert caught.value.exit_code == ExitCode.FRAME_RANGE
    assert "Read1" in group["status"].value() and script.executed == []

    group["first_frame"].setValue(FIRST + 1)
    assert settings.read_settings(group).first == FIRST + 1

    group.setInput(0, None)
    bufferany_nuke.generate(group)
    assert "no input" in group["status"].value()


def test_cache_key_follows_settings_and_upstream_but_not_layer_names(script, tmp_path):
    group = make_node()
    read = group.input(0)

    def key():
        return cache.entry_for(group, settings.read_settings(group)).key

    base = key()
    assert key() == base
    group["normal_layer"].setValue("Nw")
    assert key() == base  # layer names only rename channels in the stream
    read.setXYpos(300, -120)
    read.setSelected(False)
    assert key() == base  # nor does moving or selecting a node upstream change a pixel

    group["stabilize"].setValue("on")
    stabilised = key()
    assert stabilised != base
    group["stabilize"].setValue("auto")

    grade = nuke.nodes.Multiply(value=1.0)
    grade.setInput(0, read)
    group.setInput(0, grade)
    assert key() != base  # one more node upstream
    with_grade = key()
    grade["value"].setValue(0.5)
    assert key() != with_grade  # an edited upstream knob

    group.setInput(0, read)
    assert key() == base
    plate_file = tmp_path / "plate" / f"plate.{FIRST + 1:04d}.exr"
    stat = plate_file.stat()
    os.utime(plate_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert key() != base  # a re-rendered plate frame


def test_cache_key_sees_expression_links_gizmo_insides_and_evaluated_files(script, tmp_path, monkeypatch):
    """What really changes the plate: a knob driven by an expression that reads a node outside the
    input tree, a gizmo's insides, the file a TCL/$env path evaluates to; not labels or colours."""
    group = make_node()
    read = group.input(0)

    def key():
        return cache.entry_for(group, settings.read_settings(group)).plate_key

    control = nuke.nodes.Multiply(name="Control", value=0.5)  # connected to nothing
    grade = nuke.nodes.Multiply(name="Grade")
    grade.setInput(0, read)
    grade["value"].setExpression("Control.value * 2")
    group.setInput(0, grade)
    base = key()
    assert grade["value"].value() == 1.0
    control["value"].setValue(0.25)
    assert key() != base  # the linked knob changed the pixels, though no knob upstream did
    control["value"].setValue(0.5)
    assert key() == base
    for node_ in (control, grade, read):
        node_["label"].setValue("graded [value value]")
        node_["tile_color"].setValue(0xFF0000FF)
        node_.setXYpos(10, 20)
    assert key() == base  # labels, colours and positions change no pixel
    grade["value"].setExpression("Control.value * 2 + frame * 0")
    assert key() != base  # another expression, same values: the text counts too
    grade["value"].setExpression("Control.value * 2")

    gizmo = nuke._gizmo("StudioGrade")
    with gizmo:
        inside_in = nuke.nodes.Input(name="Input1")
        inside = nuke.nodes.Multiply(name="Inner", value=1.0)
        inside.setInput(0, inside_in)
        nuke.nodes.Output(name="Output1").setInput(0, inside)
    gizmo.setInput(0, grade)
    group.setInput(0, gizmo)
    with_gizmo = key()
    inside["value"].setValue(0.9)
    assert key() != with_gizmo  # a gizmo's insides are upstream too
    inside["value"].setValue(1.0)
    assert key() == with_gizmo

    # a file knob counts as evaluated: the same files through $env or a literal path share the cache
    group.setInput(0, read)
    literal = key()
    monkeypatch.setenv("PLATE_ROOT", str(tmp_path / "plate"))
    read["file"].setValue("$env(PLATE_ROOT)/plate.####.exr")
    assert key() == literal
    other = tmp_path / "plate_other"
    shutil.copytree(tmp_path / "plate", other)
    monkeypatch.setenv("PLATE_ROOT", str(other))
    assert key() != literal  # the script text is the same; the files it reads are not


def test_generate_without_a_server_reports_on_the_node_from_the_main_thread(script, tmp_path):
    group = make_node()
    assert bufferany_nuke.generate(group) is None  # returns at once; the worker connects
    assert script.executed == [("BufferAnytime1.CacheWrite", FIRST, LAST)]  # plate rendered to the cache
    with group:
        assert nuke.toNode(node.CACHE_WRITE)["disable"].value()  # and disabled again
    nuke._pump(lambda: "error" in group["status"].value())
    status = group["status"].value()
    assert "no bufferany-server is running" in status and "no_server.json" in status
    nuke._pump(lambda: bool(script.messages))
    assert "no bufferany-server is running" in script.messages[-1]
    assert script.violations == []
    # the plate frames the Write rendered are real float EXRs in the cache
    entry = cache.entry_for(group, settings.read_settings(group))
    channels, spec = read_exr(entry.plate_pattern.replace("####", f"{FIRST:04d}"))
    assert sorted(channels) == ["B", "G", "R"] and str(spec.format) == "half"  # RGB half: what the models read
    assert spec.get_float_attribute("PixelAspectRatio") == PIXEL_ASPECT
    plate, _ = read_exr(tmp_path / "plate" / f"plate.{FIRST:04d}.exr")
    # nuke-default: the working space "linear" converted to "sRGB" inside the Group
    assert np.allclose(channels["G"], srgb_encode(plate["G"]), atol=2e-3)
    assert entry.plate_pattern.startswith((tmp_path / "cache" / "plates").as_posix())


def test_batch_generate_is_synchronous_and_raises_the_service_error(script):
    group = make_node()
    nuke.GUI = False  # as in `nuke -t`
    with pytest.raises(ServerNotFoundError) as caught:
        bufferany_nuke.generate(group)
    assert caught.value.exit_code == ExitCode.SERVICE
    assert "no bufferany-server is running" in group["status"].value()
    assert script.main_queue.empty() and script.messages == []  # no dialog in batch


def test_batch_script_exits_with_the_error_code_naming_the_node(script, tmp_path, capsys):
    nuke.GUI = False
    plate = str(tmp_path / "plate" / "plate.####.exr")
    shot = write_fake_script(tmp_path / "shot.py", plate, {"weights": "random"})
    assert batch.main([str(shot), "--save"]) == ExitCode.SERVICE
    assert "Buffers: no bufferany-server is running" in capsys.readouterr().err
    assert script.saved == []  # nothing rendered, nothing saved

    nuke._reset(gui=False)  # each run is a fresh `nuke -t`
    assert batch.main([str(shot), "Nope"]) == ExitCode.BAD_ARGUMENTS
    assert "no BufferAnytime node named 'Nope'" in capsys.readouterr().err
    empty = tmp_path / "empty.py"
    empty.write_text("")
    nuke._reset(gui=False)
    assert batch.main([str(empty)]) == ExitCode.BAD_ARGUMENTS
    assert "has no BufferAnytime node" in capsys.readouterr().err


def test_every_host_field_of_the_job_has_a_knob_and_reaches_the_job(script):
    """The knobs come from RenderJob's host fields: name, label, tooltip (the field's help), the
    Advanced tab for advanced fields; an int knob one below the field's minimum means the default."""
    from bufferany_core.jobs import host_fields

    group = make_node()
    names = list(group.knobs())
    advanced_tab = names.index("advanced")
    for f, spec in host_fields():
        knob = group.knob(f.name)
        assert knob is not None, f.name
        assert knob.label() == spec.label and knob.tooltip().startswith(spec.help)
        assert (names.index(f.name) > advanced_tab) == spec.advanced, f.name
    assert group.knob("options") is None  # the old JSON knob is gone: every option is a knob of its own
    assert type(group["window"]).__name__ == "Int_Knob" and group["window"].value() == 0
    assert group["overlap"].value() == -1  # overlap may be 0: -1 stands for the default
    assert "0 = the default" in group["window"].tooltip() and "-1 = the default" in group["overlap"].tooltip()
    assert type(group["models_dir"]).__name__ == "File_Knob" and group["precision"].value() == "auto"
    job = settings.read_settings(group).job
    assert job["window"] is None and job["overlap"] is None and job["device"] == "auto"

    group["window"].setValue(8)
    group["overlap"].setValue(0)
    group["precision"].setValue("fp32")
    group["depth_temporal_weights"].setValue(" /tmp/depth_temporal.safetensors ")
    found = settings.read_settings(group)
    assert found.job["window"] == 8 and found.job["overlap"] == 0
    entry = cache.entry_for(group, found)
    job = _render_job(found, entry)
    assert (job.window, job.overlap, job.precision) == (8, 0, "fp32")
    assert job.depth_temporal_weights == "/tmp/depth_temporal.safetensors"
    assert (job.input, job.output, job.frames) == (
        entry.plate_pattern,
        entry.passes_pattern,
        f"{FIRST}-{LAST}",
    )

    group["window"].setValue(-3)
    bufferany_nuke.generate(group)
    assert "knob 'window' must be at least 1, or 0 for the default; got -3" in group["status"].value()


def test_a_node_saved_before_a_field_existed_reads_its_default(script):
    group = make_node()
    group.removeKnob(group["overlap"])  # as a node from an older script has no knob for a newer field
    assert settings.read_settings(group).job["overlap"] is None


def test_cancel_without_a_job_says_so(script):
    group = make_node()
    group["cancel"].execute()
    assert group["status"].value() == "nothing to cancel"


@pytest.mark.slow
def test_plugin_type_checks_against_the_types_nuke_stubs():
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent", "nuke_plugin"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # the stubs are really in effect (the project config ignores missing imports): a wrong call fails
    wrong = subprocess.run(
        [sys.executable, "-m", "mypy", "-c", "import nuke\nnuke.toNode(3)"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert wrong.returncode == 1 and "toNode" in wrong.stdout and "arg-type" in wrong.stdout, wrong.stdout


def _stub_signatures() -> dict[str, list[list[str]]]:
    """'name' / 'Class.method' -> the parameter-name lists of its definitions (overloads) in the
    installed types-nuke stubs; [] for a definition that takes *args/**kwargs only."""
    import ast

    folder = next(
        (Path(p) / "nuke-stubs" for p in sys.path if (Path(p) / "nuke-stubs" / "_nuke.pyi").is_file()), None
    )
    assert folder is not None, "types-nuke is not installed (pip install -e '.[dev]')"
    found: dict[str, list[list[str]]] = {}

    def add(key: str, fn: ast.FunctionDef) -> None:
        names = [
            a.arg
            for a in fn.args.posonlyargs + fn.args.args + fn.args.kwonlyargs
            if a.arg not in ("self", "cls")
        ]
        found.setdefault(key, []).append(names)

    for stub in folder.glob("*.pyi"):
        for item in ast.parse(stub.read_text()).body:
            if isinstance(item, ast.FunctionDef):
                add(item.name, item)
            elif isinstance(item, ast.ClassDef):
                found.setdefault(item.name, [])
                for member in item.body:
                    if isinstance(member, ast.FunctionDef):
                        add(f"{item.name}.{member.name}", member)
            elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                found.setdefault(item.target.id, [])
    return found


def test_fake_nuke_follows_the_types_nuke_stubs():
    """Every public name of the fake exists in the stubs, and every function or method the fake
    defines takes the stubs' parameter names (a prefix of them: the fake leaves out what nobody passes)."""
    import inspect

    stubs = _stub_signatures()
    own = [
        n
        for n, v in vars(nuke).items()
        if not n.startswith("_")
        and n != "TYPE_CHECKING"
        and (getattr(v, "__module__", None) == "nuke" or (n.isupper() and isinstance(v, int)))
    ]
    assert sorted(set(own) - set(stubs)) == ["OffMainThreadError"]
    checked = 0
    for name in own:
        obj = getattr(nuke, name)
        members = (
            [(name, obj)]
            if inspect.isfunction(obj)
            else [
                (f"{name}.{m}", f)
                for m, f in vars(obj).items()
                if inspect.isfunction(f) and (not m.startswith("_") or m == "__getitem__")
            ]
            if inspect.isclass(obj)
            else []
        )
        for key, fn in members:
            if key not in stubs:
                continue
            params = [
                p.name
                for p in inspect.signature(fn).parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "self"
            ]
            overloads = stubs[key]
            assert any(not o or o[: len(params)] == params for o in overloads), (key, params, overloads)
            checked += 1
    assert checked > 40


# --- issue 20: colour, identity, reload, hung servers, caches, preview, geometry, batch -------------


def _generate_plate_only(group):
    """Generate in batch mode without a server: the plate reaches the cache, then the connection fails."""
    nuke.GUI = False
    with pytest.raises(ServerNotFoundError):
        bufferany_nuke.generate(group)
    found = settings.read_settings(group)
    return cache.entry_for(group, found), found


def _cached_plate(entry, frame=FIRST):
    return read_exr(entry.plate_pattern.replace("####", f"{frame:04d}"))


def test_aces_working_space_reaches_the_models_as_srgb(script, tmp_path):
    """Under an ACES config the working space is ACEScg: the Group converts it to the config's sRGB
    texture space with OCIO before the cache, and the job says srgb_tx (the server's name for it)."""
    import OpenImageIO as oiio

    nuke.root()["OCIO_config"].setValue("fn-nuke_cg-config-v1.0.0_aces-v1.3_ocio-v2.1")
    nuke.root()["workingSpaceLUT"].setValue("ACEScg")
    group = make_node()
    entry, found = _generate_plate_only(group)
    assert found.job["input_colorspace"] == "srgb_tx"
    assert found.colour.target == "sRGB - Texture" and found.colour.convert
    channels, spec = _cached_plate(entry)
    plate, _ = read_exr(tmp_path / "plate" / f"plate.{FIRST:04d}.exr")
    rgb = np.stack([plate[c] for c in "RGB"], axis=-1)
    expected = oiio.ImageBufAlgo.colorconvert(
        oiio.ImageBuf(rgb), "ACEScg", "sRGB - Texture", False, "", "", "ocio://cg-config-v1.0.0_aces-v1.3_ocio-v2.1"
    ).get_pixels(oiio.FLOAT)
    assert np.allclose(np.stack([channels[c] for c in "RGB"], axis=-1), expected, atol=2e-3)
    assert not np.allclose(expected, srgb_encode(rgb), atol=2e-2)  # ACEScg is not linear Rec.709
    job = _render_job(found, entry)
    assert job.input_colorspace == "srgb_tx" and job.input == entry.plate_pattern


def test_display_referred_plates_and_explicit_colour_spaces_skip_the_conversion(script, tmp_path):
    group = make_node()
    group["plate_is_srgb"].setValue(True)
    entry, found = _generate_plate_only(group)
    assert found.job["input_colorspace"] == "srgb_tx" and not found.colour.convert
    channels, _ = _cached_plate(entry)
    plate, _ = read_exr(tmp_path / "plate" / f"plate.{FIRST:04d}.exr")
    assert np.allclose(channels["G"], plate["G"], atol=1e-3)  # untouched (half)

    group["plate_is_srgb"].setValue(False)
    group["input_colorspace"].setValue("ACEScg")  # the server converts, from its own config
    found = settings.read_settings(group)
    assert found.job["input_colorspace"] == "ACEScg" and not found.colour.convert
    assert cache.entry_for(group, found).plate_key != entry.plate_key  # another plate: raw, not sRGB

    group["input_colorspace"].setValue("")
    group["model_colorspace"].setValue("No Such Space")
    with pytest.raises(Exception, match="'sRGB colour space': 'No Such Space' is not in the OCIO config nuke-default"):
        settings.read_settings(group)


def test_a_started_server_never_inherits_nukes_colour_config_or_python(monkeypatch):
    monkeypatch.setenv("BUFFERANY_SERVER_CMD", "/opt/bufferany/bin/bufferany-server --device cpu")
    monkeypatch.setattr(nuke, "GUI", True)
    assert settings.server_command() == [
        *("env", "-u", "OCIO", "-u", "PYTHONPATH", "-u", "PYTHONHOME"),
        *("/opt/bufferany/bin/bufferany-server", "--device", "cpu"),
    ]
    # in batch mode (nuke -t, a farm task) the server it starts stops by itself once unused
    monkeypatch.setattr(nuke, "GUI", False)
    assert settings.server_command()[-3:] == ["cpu", "--idle-exit", str(settings.DEFAULT_IDLE_EXIT_S)]
    monkeypatch.setenv(settings.IDLE_EXIT_ENV, "45")
    assert settings.server_command()[-2:] == ["--idle-exit", "45"]
    monkeypatch.setenv(settings.IDLE_EXIT_ENV, "0")
    with pytest.raises(BadArgumentsError, match="at least 1 second"):
        settings.server_command()
    monkeypatch.delenv(settings.IDLE_EXIT_ENV)
    monkeypatch.delenv("BUFFERANY_SERVER_CMD")
    monkeypatch.setenv("PATH", "/nowhere")
    assert settings.server_command() is None  # the client's own error then names the fix


def test_jobs_belong_to_the_node_identity_and_script_not_its_name(script, tmp_path):
    gen = importlib.import_module("bufferany_nuke.generate")

    group = make_node()
    identity = node.node_id(group)
    assert len(identity) == 32 and node.node_id(group) == identity
    assert gen._lookup(("", identity)) is group
    group.setName("Renamed")
    assert gen._lookup(("", identity)) is group  # renamed while a job runs: still found
    copy = make_node()
    copy[node.NODE_ID].setValue(identity)  # a copy-pasted node carries the same knob value
    assert node.node_id(copy) != identity and node.node_id(group) == identity
    nuke.root()["name"].setValue(str(tmp_path / "other.nk"))  # another script is open now
    assert gen._lookup(("", identity)) is None


def test_closing_the_script_cancels_its_jobs_and_they_never_touch_the_next_one(script):
    gen = importlib.import_module("bufferany_nuke.generate")

    bufferany_nuke.install_callbacks()
    bufferany_nuke.install_callbacks()  # once only
    assert len(script.on_script_close) == 1
    group = make_node()
    found = settings.read_settings(group)
    run = gen._Run(name=group.fullName(), settings=found, entry=cache.entry_for(group, found), synchronous=False)
    gen._RUNNING[found.run_key] = run
    try:
        nuke.scriptClose()
        assert run.cancel_requested.is_set() and run.detached.is_set()
        run._in_main(gen._finish_status, run.key, "late news")  # nothing reaches the new script
        assert nuke._state.main_queue.empty()
    finally:
        gen._RUNNING.pop(found.run_key, None)


def test_linking_again_reloads_the_passes_read(script, tmp_path):
    group = make_node()
    pattern = _write_passes(tmp_path / "passes", range(FIRST, LAST + 1))
    node.link_passes(group, pattern, FIRST, LAST)
    assert np.all(nuke._image(group, FIRST).channels["depth.Z"] == FIRST)
    import OpenImageIO as oiio  # a forced regenerate rewrites the same files

    path = pattern.replace("####", f"{FIRST:04d}")
    buf = oiio.ImageBuf(path)
    oiio.ImageBufAlgo.mul(buf, buf, 2.0)
    buf.write(path + ".tmp.exr")
    os.replace(path + ".tmp.exr", path)
    assert np.all(nuke._image(group, FIRST).channels["depth.Z"] == FIRST)  # Nuke still shows the old frame
    node.link_passes(group, pattern, FIRST, LAST)
    assert np.all(nuke._image(group, FIRST).channels["depth.Z"] == 2 * FIRST)


def _hung_peer():
    """A server that welcomes, queues the job, subscribes, and then never says another word."""
    import socket
    import threading

    from bufferany_core import protocol

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    connections = []

    def one(conn):
        connections.append(conn)
        while True:
            try:
                header = conn.recv(protocol.HEADER.size, socket.MSG_WAITALL)
                if not header:
                    return
                request = protocol.decode(conn.recv(protocol.body_length(header), socket.MSG_WAITALL))
            except OSError:
                return
            kind, rid = request["type"], request["id"]
            reply = {
                "hello": {"type": "welcome", "id": rid, "protocol": 1, "version": "hung", "pid": 0},
                "submit": {"type": "result", "id": rid, "job_id": "j1", "state": "queued"},
                "subscribe": {"type": "result", "id": rid, "job": {}, "subscribed": True},
            }.get(kind)
            if reply is not None:
                conn.sendall(protocol.encode(reply))

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=one, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener, connections


def test_a_hung_server_fails_the_job_instead_of_leaving_the_node_generating(script, monkeypatch):
    listener, connections = _hung_peer()
    try:
        monkeypatch.setenv("BUFFERANY_SERVER_TOKEN", "secret")
        group = make_node()
        group["server_host"].setValue("127.0.0.1")
        group["server_port"].setValue(listener.getsockname()[1])
        group["server_timeout"].setValue(1)
        assert settings.read_settings(group).connection.connect_kwargs()["token"] == "secret"
        bufferany_nuke.generate(group)
        nuke._pump(lambda: group["status"].value().startswith("error"), timeout=30)
        assert "did not answer within 1" in group["status"].value(), group["status"].value()
        group["generate"].execute()  # not "already generating": the node is free again
        assert not group["status"].value().startswith("already")
        nuke._pump(lambda: group["status"].value().startswith("error"), timeout=30)
    finally:
        listener.close()
        for conn in connections:
            conn.close()


def test_remote_server_needs_a_port_and_a_token(script, monkeypatch, tmp_path):
    monkeypatch.delenv("BUFFERANY_SERVER_TOKEN", raising=False)
    group = make_node()
    group["server_host"].setValue("gpu07")
    with pytest.raises(Exception, match="a remote server needs its port"):
        settings.read_settings(group)
    group["server_port"].setValue(7600)
    with pytest.raises(Exception, match="BUFFERANY_SERVER_TOKEN"):
        settings.read_settings(group).connection.connect_kwargs()


def test_plate_is_cached_once_per_upstream_state_and_passes_per_settings(script, tmp_path):
    group = make_node()
    first, _ = _generate_plate_only(group)
    written = len(script.written)
    group["stabilize"].setValue("off")
    second, _ = _generate_plate_only(group)
    assert second.plate_key == first.plate_key and second.key != first.key
    assert len(script.written) == written  # the plate was not written again
    assert second.folder.parent.name == "passes" and second.plate_folder.parent.name == "plates"
    group["force"].setValue(True)
    _generate_plate_only(group)
    assert len(script.written) == written + (LAST - FIRST + 1)  # forced: the plate is rendered anew

    old = second.plate_folder
    stamp = time.time() - 40 * 86400
    os.utime(old / cache.PLATE_MARKER, (stamp, stamp))
    removed = bufferany_nuke.clean_cache(tmp_path / "cache", older_than_days=30)
    assert removed == [old] and not old.exists()


def test_cache_root_from_knob_callback_environment_or_script(script, tmp_path, monkeypatch):
    group = make_node()
    assert settings.cache_root(group) == tmp_path / "cache"  # $BUFFERANY_NUKE_CACHE
    monkeypatch.delenv("BUFFERANY_NUKE_CACHE")
    nuke.root()["name"].setValue(str(tmp_path / "shots" / "sh010_comp_v003.nk"))
    assert settings.cache_root(group) == tmp_path / "shots" / "bufferany_cache"  # beside the script
    bufferany_nuke.set_cache_root_callback(lambda n: str(tmp_path / "pipeline" / n.name()))
    try:
        assert settings.cache_root(group) == tmp_path / "pipeline" / "BufferAnytime1"
        monkeypatch.setenv("SHOT_ROOT", str(tmp_path / "show"))
        group["cache_dir"].setValue("$env(SHOT_ROOT)/bufferany")
        assert settings.cache_root(group) == tmp_path / "show" / "bufferany"  # knob, TCL expanded
    finally:
        bufferany_nuke.set_cache_root_callback(None)


def test_proxy_mode_is_refused(script):
    group = make_node()
    nuke.root()["proxy"].setValue(True)
    bufferany_nuke.generate(group)
    assert "proxy mode is on" in group["status"].value() and script.executed == []


def test_the_plate_reaches_the_models_on_its_format_not_its_bounding_box(script, tmp_path):
    """An overscan plate (data window beyond the format): the cache holds the format exactly."""
    import OpenImageIO as oiio

    path = tmp_path / "overscan" / f"over.{FIRST:04d}.exr"
    path.parent.mkdir()
    spec = oiio.ImageSpec(WIDTH + 8, HEIGHT + 6, 3, "float")
    spec.x, spec.y = -4, -3
    spec.full_width, spec.full_height = WIDTH, HEIGHT
    spec.attribute("PixelAspectRatio", PIXEL_ASPECT)
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec)
    out.write_image(np.full((HEIGHT + 6, WIDTH + 8, 3), 0.5, np.float32))
    out.close()
    read = nuke.nodes.Read(file=str(path).replace(f"{FIRST:04d}", "####"), first=FIRST, last=FIRST)
    group = make_node()
    group.setInput(0, read)
    entry, _ = _generate_plate_only(group)
    channels, cached = _cached_plate(entry)
    assert (cached.x, cached.y, cached.width, cached.height) == (0, 0, WIDTH, HEIGHT)
    assert channels["R"].shape == (HEIGHT, WIDTH)


def test_preview_shows_depth_normalised_inverted_in_false_colour_and_normals(script, tmp_path):
    group = make_node()
    pattern = _write_passes(tmp_path / "passes", range(FIRST, LAST + 1))  # depth.Z = the frame number
    node.link_passes(group, pattern, FIRST, LAST)
    plate_red = nuke._image(group.input(0), FIRST).channels["rgba.red"]
    assert np.array_equal(nuke._image(group, FIRST).channels["rgba.red"], plate_red)  # preview off
    group["near"].setValue(FIRST - 1)
    group["far"].setValue(FIRST + 3)
    nuke._user_set(group["preview"], "depth")
    out = nuke._image(group, FIRST)
    assert np.allclose(out.channels["rgba.red"], 0.25) and np.allclose(out.channels["rgba.blue"], 0.25)
    assert "depth.Z" in out.channels  # the passes stay in their channels
    group["invert"].setValue(True)
    assert np.allclose(nuke._image(group, FIRST).channels["rgba.green"], 0.75)
    group["invert"].setValue(False)
    nuke._user_set(group["preview"], "depth false colour")
    out = nuke._image(group, FIRST + 2)  # 0.75 of the way to far: red, some green, no blue
    assert [float(out.channels[f"rgba.{c}"].mean()) for c in ("red", "green", "blue")] == [1.0, 0.5, 0.0]
    nuke._user_set(group["preview"], "normals")
    out = nuke._image(group, FIRST)
    assert np.allclose(out.channels["rgba.green"], 0.8) and np.allclose(out.channels["rgba.blue"], 0.9)
    nuke._user_set(group["passes"], "depth")  # no normals to show: the preview steps aside
    assert np.array_equal(nuke._image(group, FIRST).channels["rgba.red"], plate_red)


def test_batch_save_never_overwrites_the_artists_script(script, tmp_path, capsys):
    assert batch.next_version(tmp_path / "sh010_comp_v012.nk") == tmp_path / "sh010_comp_v013.nk"
    (tmp_path / "sh010_comp_v013.nk").write_text("")
    assert batch.next_version(tmp_path / "sh010_comp_v012.nk") == tmp_path / "sh010_comp_v014.nk"
    assert batch.next_version(tmp_path / "comp.nk") == tmp_path / "comp_bufferany.nk"
    nuke.GUI = False
    plate = str(tmp_path / "plate" / "plate.####.exr")
    shot = write_fake_script(tmp_path / "shot.py", plate, {})
    assert batch.main([str(shot), "--save-as", str(shot)]) == ExitCode.BAD_ARGUMENTS
    assert "never overwritten" in capsys.readouterr().err
    assert batch.main([str(shot), "--save-as", str(tmp_path / "plate" / f"plate.{FIRST:04d}.exr")]) == ExitCode.BAD_ARGUMENTS
    assert "the file exists" in capsys.readouterr().err and script.saved == []


def test_passes_read_gets_a_stale_badge_when_upstream_or_settings_change(script, tmp_path, monkeypatch):
    """The passes shown were made for one upstream state and settings: a change badges the passes Read
    (colour and label) and the node; undoing it or generating again clears the badge."""
    from bufferany_nuke import stale

    group = make_node()
    read = group.input(0)
    found = settings.read_settings(group)
    entry = cache.entry_for(group, found)
    pattern = _write_passes(tmp_path / "passes", range(FIRST, LAST + 1))
    node.link_passes(group, pattern, FIRST, LAST, keys=(entry.key, entry.plate_key))
    with group:
        passes_read = nuke.toNode(node.PASSES_READ)
    assert stale.check(group) is None and passes_read["tile_color"].value() == 0

    monkeypatch.setattr(stale, "UPDATE_UI_INTERVAL_S", 0.0)
    grade = nuke.nodes.Multiply(value=0.5)
    grade.setInput(0, read)
    group.setInput(0, grade)
    nuke._update_ui(group)  # the panel is open: Nuke runs updateUI
    assert passes_read["tile_color"].value() == stale.STALE_COLOUR
    assert passes_read["label"].value() == "stale: upstream changed"
    assert group["tile_color"].value() == stale.STALE_COLOUR
    assert group["status"].value().startswith("stale: upstream changed since passes 1001-1004")
    assert nuke._image(group, FIRST).channels["depth.Z"][0, 0] == FIRST  # still shown, only badged

    group.setInput(0, read)  # the change undone
    nuke._update_ui(group)
    assert passes_read["tile_color"].value() == 0 and passes_read["label"].value() == ""
    assert group["tile_color"].value() == 0 and group["status"].value() == "passes match the input again"

    nuke._user_set(group["stabilize"], "on")  # knobChanged checks at once
    assert passes_read["label"].value() == "stale: settings changed"
    nuke._user_set(group["near"], 0.3)  # a preview knob: the passes are what they were
    assert passes_read["label"].value() == "stale: settings changed"

    # the artist's own node colour is kept; regenerating (here: cached passes for these settings) clears
    group["tile_color"].setValue(0x00FF00FF)
    nuke._user_set(group["stabilize"], "auto")
    nuke._user_set(group["stabilize"], "on")
    assert group["tile_color"].value() == 0x00FF00FF
    now = cache.entry_for(group, settings.read_settings(group))
    for frame in range(FIRST, LAST + 1):
        now.passes_file(frame).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pattern.replace("####", f"{frame:04d}"), now.passes_file(frame))
    now.record(FIRST, LAST, {"frames_written": 4})
    bufferany_nuke.generate(group)
    assert group["status"].value().startswith("cached")
    assert passes_read["tile_color"].value() == 0 and passes_read["label"].value() == ""
    assert stale.check(group) is None


def test_exr_header_reader_reads_what_oiio_wrote_with_the_standard_library(tmp_path):
    from bufferany_nuke import exr_header

    header = {FIRST: {"bufferany/depth_range": '{"p01": 0.5}', "bufferany/untrained": 1, "bufferany/x": 2.5}}
    pattern = _write_passes(tmp_path / "p", [FIRST], header=header)
    found = exr_header.read_attributes(pattern.replace("####", f"{FIRST:04d}"))
    assert found["bufferany/depth_range"] == '{"p01": 0.5}' and found["bufferany/untrained"] == 1
    assert found["bufferany/x"] == 2.5 and found["pixelAspectRatio"] == PIXEL_ASPECT
    (tmp_path / "not.exr").write_bytes(b"P6 not an exr")
    with pytest.raises(ValueError, match="not an OpenEXR"):
        exr_header.read_attributes(str(tmp_path / "not.exr"))


def test_auto_range_sets_near_and_far_from_the_recorded_depth_percentiles(script, tmp_path):
    group = make_node()
    group["auto_range"].execute()
    assert group["status"].value() == "auto range: no passes yet: Generate first"

    ranges = {f: {"bufferany/depth_range": json.dumps({"p01": 0.1 * f, "p99": 0.2 * f, "min": 0, "max": 1})}
              for f in range(FIRST, LAST)}  # the last frame was written by an earlier version
    ranges[FIRST + 1]["bufferany/depth_convention"] = "distance"
    pattern = _write_passes(tmp_path / "passes", range(FIRST, LAST + 1), header=ranges)
    node.link_passes(group, pattern, FIRST, LAST)
    nuke.frame(FIRST)
    group["auto_range"].execute()
    # inverse depth (the default): bigger is closer, so near takes the 99th percentile
    assert (group["near"].value(), group["far"].value()) == pytest.approx((0.2 * FIRST, 0.1 * FIRST))
    assert group["status"].value().startswith(f"auto range: near {0.2 * FIRST:.6g}")
    nuke.frame(FIRST + 1)
    assert node.auto_range(group) == pytest.approx((0.1 * (FIRST + 1), 0.2 * (FIRST + 1)))  # distance
    nuke.frame(LAST + 50)  # past the passes: the last frame's file
    assert node.auto_range(group) is None
    assert "records no depth range" in group["status"].value()
    assert group["near"].value() == pytest.approx(0.1 * (FIRST + 1))  # left as it was
