"""A worker's failure on Ray in the harness's own words: the error line from inside a real
RayTaskError (no Ray header, no colour codes), and the likely cause of a refused connection."""

from __future__ import annotations

import socket

import pytest

from harness.errors import BackendError
from harness.workers.ray_errors import explain_refused, ray_error_line

ray = pytest.importorskip("ray")


def test_the_harness_line_from_inside_a_ray_task_error():
    cause = BackendError("runs/x/manifest.json is not visible on node 10.0.0.2")
    header = "\x1b[36mray::WorkerActor.run()\x1b[39m (pid=123, ip=10.0.0.2)"
    remote = f"Traceback (most recent call last):\n  File x\n{cause}"
    error = ray.exceptions.RayTaskError("WorkerActor.run", remote, cause)
    assert ray_error_line(error) == "runs/x/manifest.json is not visible on node 10.0.0.2"
    bare = RuntimeError(f"{header}\nTraceback (most recent call last):\n  File \"a.py\", line 1\n"
                        "\x1b[31mValueError: the real reason\x1b[0m\n")
    assert ray_error_line(bare) == "ValueError: the real reason"
    other = ray.exceptions.RayTaskError("f", "tb", ValueError("bad value"))
    assert ray_error_line(other) == "ValueError: bad value"


def test_a_dead_actor_in_one_line():
    process = RuntimeError(
        "The actor is dead because its worker process has died. Worker exit type: SYSTEM_ERROR Worker exit "
        "detail: Worker unexpectedly exits with a connection error code 2. End of file. Some common causes "
        "include: (1) the process was killed by the OOM killer"
    )
    assert ray_error_line(process) == ("The actor is dead because its worker process has died (SYSTEM_ERROR: "
                                       "Worker unexpectedly exits with a connection error code 2)")
    node = RuntimeError("The actor died because its node has died. Node Id: 20ccb68a\n\tthe node was lost")
    assert ray_error_line(node) == "The actor died because its node has died"
    lost = RuntimeError(
        "The actor 5556b805 is unavailable: The actor is temporarily unavailable: RpcError: RPC error: "
        "failed to connect to all addresses; last error: UNKNOWN: ipv4:10.0.0.2:14623: Failed to connect to "
        "remote host: Connection refused rpc_code: 14. The task may or may not have run."
    )
    assert ray_error_line(lost) == (
        "The actor is unreachable, its node may be lost (Failed to connect to remote host: Connection "
        "refused rpc_code: 14)"
    )


def test_a_closed_port_says_nothing_listens():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = explain_refused(f"127.0.0.1:{port}", ConnectionError("could not connect"))
    assert f"nothing listens at 127.0.0.1:{port}" in line and "ray start --head" in line


def test_a_listening_cluster_that_refuses_points_to_the_token(monkeypatch):
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        line = explain_refused(f"127.0.0.1:{port}", ConnectionError("Failed to connect to GCS"))
    assert "token authentication" in line and "RAY_AUTH_TOKEN" in line and "\n" not in line
