"""Farm jobs that run anywhere (issue 18): the written Deadline, OpenCue and OpenJD jobs' commands run
from another working folder, as a worker runs them, with absolute, mapped paths and the job's own
frames (steps and lists kept); values a job file cannot carry are refused."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from pipeline_plates import write_plate

from bufferany_core.errors import ExitCode
from bufferany_core.pipeline import farm
from bufferany_core.testing.farm_tokens import expand_openjd, expand_tokens, split_deadline_arguments

CLI = [sys.executable, "-m", "bufferany_core.pipeline.cli"]
TINY = ["--passes", "depth", "--depth-model", "video-depth-anything-tiny", "--weights", "random", "--device", "cpu",
        "--window", "8", "--overlap", "2", "--processing-size", "28"]


def cli(*args, cwd=None, env=None):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={**os.environ, **(env or {})})


def key_values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines())


@pytest.fixture
def studio(tmp_path):
    """A plate under `studio/a plate/`, `mnt` a link to `studio` (the workers' mount), and the folders
    a submitter and a worker run in."""
    studio = tmp_path / "studio"
    write_plate(studio / "a plate", range(1001, 1009))
    (tmp_path / "mnt").symlink_to(studio)
    for name in ("submit", "worker"):
        (tmp_path / name).mkdir()
    return tmp_path


@pytest.mark.slow
def test_deadline_tasks_run_from_another_folder_with_stepped_frames_and_mapped_paths(studio):
    submit = studio / "submit"
    run = cli("../studio/a plate/shot.####.exr", "-o", "../studio/out/shot_depth.####.exr", "--frames", "1001-1007x2",
              *TINY, "--deadline-job", "dl", "--chunk-size", 2, "--path-map", f"{studio / 'studio'}={studio / 'mnt'}",
              "--farm-pool", "gpu", "--farm-group", "cuda", "--farm-priority", 70, "--farm-comment", "sh010 depth",
              "--farm-machine-limit", 2, "--farm-env", "OMP_NUM_THREADS=1",
              cwd=submit, env={"BUFFERANY_MODELS": "../studio/models"})
    assert run.returncode == 0, run.stderr
    job_info = key_values(submit / "dl" / "job_info.job")
    plugin = key_values(submit / "dl" / "plugin_info.job")
    assert job_info["Frames"] == "1001-1007x2" and job_info["ChunkSize"] == "2"
    assert job_info["OutputDirectory0"] == str(studio / "mnt" / "out")
    assert (job_info["Pool"], job_info["Group"], job_info["Priority"], job_info["Comment"], job_info["MachineLimit"]) == (
        "gpu", "cuda", "70", "sh010 depth", "2")
    env = sorted(v for k, v in job_info.items() if k.startswith("EnvironmentKeyValue"))
    assert env == [f"BUFFERANY_MODELS={studio / 'mnt' / 'models'}", "OMP_NUM_THREADS=1"]
    assert plugin["ShellExecute"] == "False" and plugin["StartupDirectory"] == str(studio / "mnt" / "a plate")
    args = split_deadline_arguments(plugin["Arguments"])
    assert args[0] == str(studio / "mnt" / "a plate" / "shot.####.exr")  # absolute, mapped, one argument
    assert "--shot-range" in args and args[args.index("--shot-range") + 1] == "1001-1007x2"
    # Deadline's tasks of 2 frames from the list 1001,1003,1005,1007, run as a worker runs them
    for start, end in ((1001, 1003), (1005, 1007)):
        task = split_deadline_arguments(expand_tokens(plugin["Arguments"], start, end))
        done = subprocess.run([plugin["Executable"], *task], capture_output=True, text=True, timeout=300,
                              cwd=studio / "worker")
        assert done.returncode == 0, done.stderr
        assert "Progress: 100%" in done.stdout  # what the plugin's `.*Progress: (\d+)%.*` handler reads
    written = sorted(p.name for p in (studio / "studio" / "out").glob("*.exr"))
    assert written == [f"shot_depth.{n}.exr" for n in (1001, 1003, 1005, 1007)]
    assert not list((studio / "worker").iterdir())


def test_opencue_spec_is_built_with_pyoutline_and_its_command_runs_elsewhere(studio):
    pytest.importorskip("outline")
    submit = studio / "submit"
    run = cli("../studio/a plate/shot.####.exr", "--frames", "1001,1003-1008", *TINY, "--opencue-job", "job.xml",
              "--chunk-size", 3, "--farm-service", "bufferany", "--farm-tags", "gpu,cuda", "--farm-gpus", 1,
              "--farm-env", "OMP_NUM_THREADS=1", "--farm-priority", 60, cwd=submit)
    assert run.returncode == 0, run.stderr
    spec = ET.parse(submit / "job.xml").getroot()
    layer = spec.find("job/layers/layer")
    assert layer is not None and layer.get("name") == "render"
    assert layer.findtext("range") == "1001,1003-1008" and layer.findtext("chunk") == "3"
    assert layer.findtext("services/service") == "bufferany" and layer.findtext("tags") == "gpu | cuda"
    assert layer.findtext("gpus") == "1" and spec.findtext("job/priority") == "60"
    assert {k.get("name"): k.text for k in layer.findall("env/key")} == {"OMP_NUM_THREADS": "1"}
    command = layer.findtext("cmd")
    assert "'#FRAME_START#-#FRAME_END#'" in command
    # RQD runs the layer command through a shell on the host, from its own folder
    done = subprocess.run(expand_tokens(command, 1007, 1009) + " --dry-run", shell=True, capture_output=True,
                          text=True, timeout=300, cwd=studio / "worker")
    assert done.returncode == 0, done.stderr
    assert "To render: 1007-1008 (2 frame(s))" in done.stdout
    assert f"Output: {studio / 'studio' / 'a plate' / 'shot_buffers.####.exr'}" in done.stdout


def test_openjd_job_validates_and_has_a_task_per_chunk(studio):
    model = pytest.importorskip("openjd.model")
    submit = studio / "submit"
    run = cli("../studio/a plate/shot.####.exr", "--frames", "1001-1008", *TINY, "--openjd-job", "bundle",
              "--chunk-size", 3, "--farm-gpus", 1, cwd=submit)
    assert run.returncode == 0, run.stderr
    data = json.loads((submit / "bundle" / "template.json").read_text())
    values = json.loads((submit / "bundle" / "parameter_values.json").read_text())
    template = model.decode_job_template(template=data)
    job = model.create_job(job_template=template, job_parameter_values={})
    step = job.steps[0]
    chunks = [task["Frames"].value for task in model.StepParameterSpaceIterator(space=step.parameterSpace)]
    assert chunks == ["1001-1003", "1004-1006", "1007-1008"] and values == {"parameterValues": []}
    action = data["steps"][0]["script"]["actions"]["onRun"]
    args = [expand_openjd(a, chunks[-1]) for a in action["args"]]
    done = subprocess.run([action["command"], *args, "--dry-run"], capture_output=True, text=True, timeout=300,
                          cwd=studio / "worker")
    assert done.returncode == 0, done.stderr
    assert "To render: 1007-1008 (2 frame(s))" in done.stdout


@pytest.mark.parametrize(
    ("folder", "flag", "says"),
    [
        ("bad\nname", "--deadline-job", "U+000A"),
        ("bad\rname", "--opencue-cmd", "U+000D"),
        ("say \"hi\"", "--deadline-job", "double quote"),
        ("a<QUOTE>b", "--deadline-job", "<QUOTE>"),
        ("a\u2028b", "--openjd-job", "U+2028"),
    ],
)
def test_values_a_job_file_cannot_carry_are_refused(tmp_path, folder, flag, says):
    pattern = write_plate(tmp_path / folder, range(1, 4))
    args = [pattern, "--weights", "random", flag] + ([tmp_path / "job"] if flag != "--opencue-cmd" else [])
    run = cli(*args)
    assert run.returncode == ExitCode.BAD_ARGUMENTS, run.stdout
    assert says in run.stderr and "usage:" not in run.stderr
    assert not (tmp_path / "job").exists()


def test_path_maps_for_windows_workers():
    maps = [farm.PathMap.parse("/mnt/shots=S:\\shots"), farm.PathMap.parse("/mnt=M:\\"), farm.PathMap.parse("P:\\proj=/proj")]
    assert farm.map_path("/mnt/shots/sh010/plate.####.exr", maps) == "S:\\shots\\sh010\\plate.####.exr"
    assert farm.map_path("/mnt/other/x.exr", maps) == "M:\\other\\x.exr"
    assert farm.map_path("/mnt2/x.exr", maps) == "/mnt2/x.exr"  # a prefix of a name is not a folder
    assert farm.map_path("p:\\PROJ\\a\\b.exr", maps) == "/proj/a/b.exr"  # Windows paths match without case
    with pytest.raises(Exception, match="FROM=TO"):
        farm.PathMap.parse("/mnt/shots")
    quoted = farm.deadline_join(["S:\\a b\\", "x"])
    assert split_deadline_arguments(quoted) == ["S:\\a b\\", "x"]
    assert shlex.split(farm.deadline_join(["/a b/c", ""])) == ["/a b/c", ""]
