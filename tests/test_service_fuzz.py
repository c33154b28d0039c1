"""Outside-in abuse of a real `bufferany-server` on loopback: over 10,000 malformed, oversized,
unauthenticated and hostile-path messages plus an idle-connection flood; afterwards a client is
served within a second and a tiny job completes. Prints the counts and the server's memory growth."""

from __future__ import annotations

import json
import random
import socket
import struct
import time
from pathlib import Path

import pytest
from pipeline_plates import write_plate
from service_support import ServerProcess, closed_by_server, raw_socket, receive

from bufferany_core import protocol
from bufferany_core.client import Client

TINY = {"passes": ["depth"], "depth_model": "video-depth-anything-tiny", "weights": "random",
        "window": 6, "overlap": 2, "depth_processing_size": 28}
HOSTILE_PATHS = ["/", "/etc/passwd", "/etc/x.####.exr", "../../../etc/x.exr", "/proc/self/mem",
                 "/dev/zero", "~root/.ssh/x.exr", "/tmp/../etc/shadow", "\\\\server\\share\\x.exr"]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _hostile(rng: random.Random, root: Path) -> bytes:
    """One body that an authenticated connection must answer with an error, keeping the connection."""
    kind = rng.randrange(12)
    if kind == 0:
        return rng.randbytes(rng.randint(1, 200))
    if kind == 1:
        return b"[" * rng.randint(100, 20_000)
    if kind == 2:
        return json.dumps(rng.choice([[1], "x", 3.5, None, True])).encode()
    if kind == 3:
        return json.dumps({"type": rng.choice(["launch", "", "HELLO", "hello"]), "id": 1}).encode()
    if kind == 4:
        return json.dumps({"type": "status", "id": rng.choice([None, True, [], "x" * 70, 2**70])}).encode()
    if kind == 5:
        junk = rng.choice([None, 5, [], {"a": 1}, "x" * 5000, "\ud800", "a\x00b"])
        return json.dumps({"type": rng.choice(["cancel", "subscribe", "status"]), "id": 2, "job_id": junk}).encode()
    if kind == 6:
        return json.dumps({"type": "list_jobs", "id": 3, rng.choice(["x", "\udfff", "offset"]): "1"}).encode()
    path = rng.choice(HOSTILE_PATHS)
    inside = str(root / "plates" / "p.####.exr")
    job = rng.choice([
        {"input": path},
        {"input": inside, "output": path},
        {"input": inside, "output": str(root / ".." / "escape" / "x.####.exr")},
        {"input": inside, "frames": "1-999999999"},
        {"input": inside, "frames": "1-3\ud800"},
        {"input": path + "\x00.exr"},
        {"output": inside},
        {"input": inside, "weights": "relative.safetensors"},
        {"input": inside, "passes": ["depth"] * 50},
        {"input": inside, "window": "8"},
        {"input": "x" * 5000},
    ])
    return json.dumps({"type": "submit", "id": 4, "job": job}).encode()


@pytest.mark.slow
def test_fuzz_and_flood_then_a_client_is_served_and_a_job_completes(tmp_path):
    root = tmp_path / "root"
    plate = write_plate(root / "plates", range(1, 4), name="p")
    server = ServerProcess(tmp_path, allow_roots=[root], timeout=60)
    rng = random.Random(19)
    counts = {"authenticated": 0, "unauthenticated": 0, "oversized_after_hello": 0}
    try:
        pid = server.process.pid
        before = _rss_kib(pid)
        started = time.monotonic()

        # Authenticated hostile messages, pipelined 100 at a time; every one answered with an error.
        sock = raw_socket(server, timeout=30)
        while counts["authenticated"] < 9000:
            batch = [_hostile(rng, root) for _ in range(100)]
            sock.sendall(b"".join(protocol.HEADER.pack(len(body)) + body for body in batch))
            for _ in batch:
                reply = receive(sock)
                assert reply["type"] == "error" and reply["message"], reply
                assert reply["code"] in ("bad_message", "bad_request", "rejected"), reply
            counts["authenticated"] += len(batch)

        # Unauthenticated: garbage, wrong tokens, hostile hellos, oversized lengths; each connection closed.
        for index in range(1000):
            bad = socket.create_connection(server.address, timeout=10)
            choice = index % 5
            if choice == 0:
                bad.sendall(protocol.encode({"type": "hello", "id": 0, "token": "x" * 43, "protocol": 1}))
            elif choice == 1:
                bad.sendall(protocol.encode({"type": "submit", "id": 1, "job": {"input": "/etc/passwd"}}))
            elif choice == 2:
                bad.sendall(struct.pack(">I", rng.randint(protocol.MAX_MESSAGE_BYTES + 1, 0xFFFFFFFF)))
            elif choice == 3:
                bad.sendall(struct.pack(">I", 100_000) + rng.randbytes(1000))  # a large hello: not read
            else:
                bad.sendall(b"GET / HTTP/1.1\r\n\r\n")
            assert receive(bad)["type"] == "error"
            assert closed_by_server(bad)
            bad.close()
            counts["unauthenticated"] += 1

        # Oversized after authentication: an error, then the server hangs up.
        for _ in range(200):
            big = raw_socket(server)
            big.sendall(struct.pack(">I", protocol.MAX_MESSAGE_BYTES + rng.randint(1, 1 << 30)))
            assert receive(big)["code"] == "too_large"
            big.close()
            counts["oversized_after_hello"] += 1

        # An idle flood: sockets that never say hello.
        idle = [socket.create_connection(server.address) for _ in range(400)]
        time.sleep(0.2)
        flooded = _rss_kib(pid)  # before the job: its torch import and model are not the fuzz's doing

        served = time.monotonic()
        with Client.connect(server.discovery, timeout=10) as client:
            status = client.status()
            time_to_serve = time.monotonic() - served
            assert status["pid"] == pid
            assert time_to_serve < 1.0, f"served after {time_to_serve:.2f} s"
            assert client.list_jobs() == []  # nothing hostile was queued
            result = client.wait(client.submit({"input": plate, **TINY}))
        assert result["frames_written"] == [1, 2, 3]
        for sock_ in idle:
            sock_.close()
        after = _rss_kib(pid)
        total = sum(counts.values())
        print(
            f"\nfuzz: {total} messages {counts}, {time.monotonic() - started:.1f} s; served "
            f"{time_to_serve * 1000:.0f} ms after a {len(idle)}-socket idle flood; server RSS "
            f"{before / 1024:.1f} MiB -> {flooded / 1024:.1f} MiB after the abuse "
            f"(+{(flooded - before) / 1024:.1f} MiB), {after / 1024:.0f} MiB after the job (torch, a model)"
        )
        assert flooded - before < 64 * 1024, "the abuse grew the server by more than 64 MiB"
        assert total >= 10_000
        assert server.process.poll() is None
        assert list(tmp_path.glob("escape*")) == [] and not (tmp_path / "escape").exists()
        assert "Traceback" not in server.log() and "Logging error" not in server.log()
    finally:
        server.stop()
