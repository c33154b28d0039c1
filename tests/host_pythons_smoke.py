"""Host-side smoke check, run by tests/test_host_pythons.py under every installed host Python (3.9 to
3.13) with `python -S` (no site-packages: no numpy, no torch, as inside Nuke or Blender).

    python -S tests/host_pythons_smoke.py REPO

Compiles every host-side file, imports the host-side core, the Nuke plugin (against the fake `nuke`)
and the Blender add-on's standard-library half, builds a RenderJob, round-trips it through the wire
protocol, and drives the real client against a tiny stdlib socket peer: a full job, then a peer that
stops answering (the reply timeout must be a ServiceError saying so, not "lost the connection": on
Python 3.9 `socket.timeout` is not `TimeoutError`). Prints one JSON line; exits non-zero on failure.
"""

import importlib
import json
import socket
import sys
import threading
import time
import types
from pathlib import Path

REPO = Path(sys.argv[1]).resolve()
sys.path[:0] = [str(REPO), str(REPO / "tests" / "fake_nuke"), str(REPO / "nuke_plugin")]

HOST_CORE = (
    "bufferany_core",
    "bufferany_core.errors",
    "bufferany_core.conventions",
    "bufferany_core.jobs",
    "bufferany_core.atomic",
    "bufferany_core.framepaths",
    "bufferany_core.protocol",
    "bufferany_core.discovery",
    "bufferany_core.client",
    "bufferany_core.cli_support",
)
report = {"python": "{}.{}".format(*sys.version_info[:2])}

# 1. every host-side file compiles under this Python (bpy modules included: Blender 5.1+ runs 3.13)
sources = [REPO / "bufferany_core" / (name.split(".")[-1] + ".py") for name in HOST_CORE[1:]]
sources += [REPO / "bufferany_core" / "__init__.py"]
for folder in ("nuke_plugin", "blender_addon", "pyblish_plugins"):
    sources += sorted(p for p in (REPO / folder).rglob("*.py") if "vendor" not in p.parts)
for path in sources:
    compile(path.read_text(encoding="utf-8"), str(path), "exec")
report["compiled"] = len(sources)

# 2. imports: the core's host side, the Nuke plugin (fake nuke), the Blender add-on's stdlib half
for name in HOST_CORE:
    importlib.import_module(name)
import bufferany_nuke  # noqa: E402
import bufferany_nuke.batch  # noqa: E402,F401
import nuke  # noqa: E402  (tests/fake_nuke)

package = types.ModuleType("blender_addon")  # its __init__ imports bpy: load the stdlib half alone
package.__path__ = [str(REPO / "blender_addon")]
sys.modules["blender_addon"] = package
blender_core = importlib.import_module("blender_addon.core")
heavy = sorted(m for m in ("numpy", "torch", "OpenImageIO", "cv2", "bpy") if m in sys.modules)
assert not heavy, heavy

# 3. a RenderJob, the Nuke knobs made from its fields, and the wire round trip
from bufferany_core import protocol  # noqa: E402
from bufferany_core.client import Client, ServerNotFoundError  # noqa: E402
from bufferany_core.errors import ServiceError  # noqa: E402
from bufferany_core.jobs import RenderJob  # noqa: E402

job = RenderJob(input="/shots/a/plate.####.exr", frames="1001-1010", passes=("depth",), window=8)
assert RenderJob.from_dict(job.to_dict()) == job
wire = protocol.job_to_wire(job)
assert protocol.job_from_wire(wire) == job
message = {"type": "submit", "id": 1, "job": wire}
frame = protocol.encode(message)
assert protocol.body_length(frame[: protocol.HEADER.size]) == len(frame) - protocol.HEADER.size
assert protocol.decode(frame[protocol.HEADER.size :]) == message
assert blender_core.jobs.RenderJob is RenderJob

nuke._reset(1001, 1010)
group = bufferany_nuke.node.build_node("BufferAnytime1")
group["window"].setValue(8)
from bufferany_nuke.job_knobs import read_job  # noqa: E402

assert read_job(group)["window"] == 8
report["knobs"] = len(group.knobs())


# 4. the client against a tiny peer speaking the wire protocol
def serve(listener, hang_after):
    """Answer hello / submit / subscribe (then a progress and a finished event) / status; after
    `hang_after` requests on a connection, read but never answer (a hung server)."""

    def one(conn):
        answered = 0
        with conn:
            while True:
                header = _exactly(conn, protocol.HEADER.size)
                if header is None:
                    return
                request = protocol.decode(_exactly(conn, protocol.body_length(header)))
                if hang_after is not None and answered >= hang_after:
                    continue
                answered += 1
                kind, rid = request["type"], request["id"]
                if kind == "hello":
                    reply = {"type": "welcome", "id": rid, "protocol": 1, "version": "smoke", "pid": 0}
                elif kind == "submit":
                    reply = {"type": "result", "id": rid, "job_id": "j1", "state": "queued"}
                elif kind == "subscribe":
                    conn.sendall(protocol.encode({"type": "result", "id": rid, "job": {}, "subscribed": True}))
                    for event in (
                        {"type": "progress", "percent": 50, "done": 1, "total": 2},
                        {"type": "finished", "result": {"frames_written": 2}},
                    ):
                        conn.sendall(protocol.encode({"type": "event", "job_id": "j1", "event": event}))
                    continue
                else:
                    reply = {"type": "result", "id": rid, "job": {"job_id": "j1", "state": "finished"}}
                conn.sendall(protocol.encode(reply))

    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def _exactly(conn, size):
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def peer(hang_after):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    threading.Thread(target=serve, args=(listener, hang_after), daemon=True).start()
    return listener, listener.getsockname()[1]


listener, port = peer(None)
with Client.connect(host="127.0.0.1", port=port, token="t", timeout=5) as client:
    job_id = client.submit(job)
    events = []
    result = client.wait(job_id, on_event=events.append)
    assert result == {"frames_written": 2}, result
    assert [e["type"] for e in events] == ["progress", "finished"], events
    assert client.status(job_id)["state"] == "finished"
listener.close()

listener, port = peer(1)  # welcomes, then never answers
client = Client.connect(host="127.0.0.1", port=port, token="t", timeout=0.5)
started = time.monotonic()
try:
    client.status("j1")
except ServerNotFoundError as exc:
    raise AssertionError(f"a reply timeout reported as a lost connection: {exc}") from exc
except ServiceError as exc:
    assert "did not answer within 0.5 s" in str(exc), exc
else:
    raise AssertionError("a hung server answered")
assert time.monotonic() - started < 5
assert client._channel.sock.fileno() == -1, "the channel must be closed after a timeout"
listener.close()
report["client"] = "ok"
print(json.dumps(report))
