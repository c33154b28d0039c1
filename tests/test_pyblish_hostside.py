"""In a host's Python (no numpy, OpenImageIO, torch) every plugin file loads, the host-side plugins
work, and a validator fails the publish saying what it needs rather than being skipped."""

from __future__ import annotations

import json

from conftest import run_without_heavy_modules
from pyblish_support import PLUGINS


def test_plugins_load_without_heavy_modules_and_validators_refuse_to_pass(tmp_path):
    (tmp_path / "shot_buffers.1001.exr").write_bytes(b"")  # present, so only the heavy checks could fail it
    code = f"""
import json, sys
import pyblish.api, pyblish.plugin, pyblish.util
plugins = pyblish.plugin.discover(paths=[{str(PLUGINS)!r}])

class CollectOne(pyblish.api.ContextPlugin):
    order = pyblish.api.CollectorOrder
    def process(self, context):
        context.create_instance("sh010", family="bufferany.passes", plate={str(tmp_path / "shot.####.exr")!r},
                                output={str(tmp_path / "shot_buffers.####.exr")!r}, frameStart=1001, frameEnd=1001,
                                passes=["depth"])

context = pyblish.util.publish(plugins=[CollectOne, *plugins])
pyblish.api.register_host("nuke")
in_nuke = pyblish.plugin.discover(paths=[{str(PLUGINS)!r}])
print(json.dumps({{
    "plugins": sorted(p.__name__ for p in plugins),
    "in_nuke": sorted(p.__name__ for p in in_nuke),
    "errors": {{r["plugin"].__name__: str(r["error"]) for r in context.data["results"] if r["error"]}},
    "modules": sorted(m for m in sys.modules if m.startswith("bufferany_core")),
}}))
"""
    run = run_without_heavy_modules(code)
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout.splitlines()[-1])
    assert out["plugins"] == sorted(
        ["CollectBufferanyFolder", "ExtractBufferanyMissingPasses", "IntegrateBufferanyVersion"]
        + [f"ValidateBufferany{name}" for name in ("Frames", "Channels", "Compression", "Provenance")]
        + [f"ValidateBufferany{name}" for name in ("MatchesPlate", "Finite", "UnitNormals", "Flicker")]
    )
    assert sorted(set(out["in_nuke"]) - set(out["plugins"])) == ["CollectBufferanyNuke"]
    validator = out["errors"]["ValidateBufferanyFrames"]
    assert "the bufferany validators need numpy and OpenImageIO" in validator
    assert "IntegrateBufferanyVersion" not in out["errors"]  # never reached: validation failed
    assert not any(
        m.startswith(("bufferany_core.frames", "bufferany_core.publish.checks")) for m in out["modules"]
    )
