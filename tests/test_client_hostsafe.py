"""The client as Nuke or Blender run it: an interpreter where torch, numpy, cv2 and OpenImageIO cannot
be imported, starting and driving a real `bufferany-server`."""

from __future__ import annotations

import ast
import json
import shlex

from conftest import REPO, run_without_heavy_modules
from service_support import server_command

HOST_MODULES = (
    "client.py",
    "protocol.py",
    "discovery.py",
    "jobs.py",
    "errors.py",
    "conventions.py",
    "atomic.py",
    "cli_support.py",
)


def test_host_side_modules_parse_as_python_3_10():
    paths = [REPO / "bufferany_core" / name for name in HOST_MODULES]
    paths += sorted((REPO / "nuke_plugin").rglob("*.py")) + sorted((REPO / "blender_addon").glob("*.py"))
    for path in paths:
        ast.parse(path.read_text(), filename=str(path), feature_version=(3, 10))  # SyntaxError fails the test


def test_client_starts_and_drives_a_server_without_heavy_modules(tmp_path):
    discovery = tmp_path / "home" / "server.json"
    missing = tmp_path / "plates" / "missing.####.exr"
    command = shlex.join([*server_command(), "--port", "0", "--device", "cpu", "--allow-root", str(tmp_path)])
    result = run_without_heavy_modules(
        f"""
        import json, sys
        from bufferany_core.client import Client, JobFailedError, RequestRejectedError

        report = {{}}
        with Client.connect(start_server=True, timeout=60) as client:
            report["pid"] = client.status()["pid"]
            job_id = client.submit({{"input": {str(missing)!r}, "weights": "random", "passes": ["depth"]}})
            events = []
            try:
                client.wait(job_id, on_event=events.append)
            except JobFailedError as exc:
                report["failed"] = [exc.exit_code, str(exc)]
            report["events"] = [event["type"] for event in events]
            try:
                client.submit({{"input": {str(missing)!r}, "output": "/elsewhere/x.####.exr"}})
            except RequestRejectedError as exc:
                report["rejected"] = exc.exit_code
            report["jobs"] = [job["state"] for job in client.list_jobs()]
            client.shutdown()
        report["heavy"] = sorted(m for m in ("torch", "numpy", "cv2", "OpenImageIO") if m in sys.modules)
        print(json.dumps(report))
        """,
        env={"BUFFERANY_SERVER_FILE": str(discovery), "BUFFERANY_SERVER_CMD": command},
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["heavy"] == []
    exit_code, message = report["failed"]
    assert exit_code == 3 and "missing" in message, report  # InputNotFoundError, the server's own message
    assert report["events"] == ["queued", "failed"]
    assert report["rejected"] == 9
    assert report["jobs"] == ["failed"]
