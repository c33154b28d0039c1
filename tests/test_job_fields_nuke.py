"""A field added once to RenderJob shows up in the Nuke node without any other edit: a copy of
bufferany_core gets one more field, and the copied plugin, in the fake Nuke, has a knob for it
whose value reaches the job and the cache key."""

from __future__ import annotations

from job_field_copy import REPO, copy_with_new_field, run_in

FAKE_NUKE = REPO / "tests" / "fake_nuke"


def test_a_field_added_to_renderjob_gets_a_knob_that_reaches_the_job(tmp_path):
    copy = copy_with_new_field(tmp_path, "nuke_plugin")
    found = run_in(
        copy,
        f"""
        import json, os, sys
        sys.path[:0] = [{str(FAKE_NUKE)!r}, {str(copy / "nuke_plugin")!r}]
        os.environ["BUFFERANY_NUKE_CACHE"] = {str(tmp_path / "cache")!r}
        import nuke
        import bufferany_core, bufferany_nuke
        from bufferany_nuke import cache, node, settings
        from bufferany_nuke.generate import _render_job

        nuke._reset(1, 4, nuke.Format(8, 8, 1.0))
        read = nuke.nodes.Read(file={str(tmp_path / "plate.####.exr")!r}, first=1, last=4)
        group = node.build_node("Sharp")
        group.setInput(0, read)
        knob = group.knob("sharpen")
        names = list(group.knobs())
        default_value = knob.value()

        def job_and_key():
            found = settings.read_settings(group)
            entry = cache.entry_for(group, found)
            return _render_job(found, entry), entry.key

        default_job, default_key = job_and_key()
        knob.setValue(3)
        job, key = job_and_key()
        print(json.dumps({{
            "core": bufferany_core.__file__,
            "class": knob.Class(),
            "label": knob.label(),
            "tooltip": knob.tooltip(),
            "advanced": names.index("sharpen") > names.index("advanced"),
            "default_value": default_value,
            "default_job": default_job.sharpen,
            "job": job.sharpen,
            "pixels": job.pixel_settings().get("sharpen"),
            "key_changed": key != default_key,
        }}))
        """,
    )
    assert found["core"] == str(copy / "bufferany_core" / "__init__.py")  # the copy, not the checkout
    assert found["class"] == "Int_Knob" and found["label"] == "sharpen"
    assert found["tooltip"] == "test field; 0 = the default" and found["advanced"]
    assert found["default_value"] == 0 and found["default_job"] is None
    assert found["job"] == 3 and found["pixels"] == 3
    assert found["key_changed"]  # the cache key covers the new field too
