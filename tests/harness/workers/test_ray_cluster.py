"""A real two-node Ray cluster on this machine: a head (`ray start --head`) and a second node
(`ray start --address`) in a mount namespace of its own, where a tmpfs hides the test's files, so
no actor there can see the run directory or the model. The driver is `harness run games --ray`
in a subprocess, on the scripted backend. The tests run in file order; the last one kills node 2.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.harness.workers.test_workers import assert_one_line_per_game, events, scripted_config

pytest.importorskip("ray")
from harness.records import ErrorEvent, RunEndEvent, RunStartEvent  # noqa: E402

RAY = Path(sys.executable).with_name("ray")
OUR_MOUNTS = os.readlink("/proc/self/ns/mnt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray(*args: str, prefix: tuple[str, ...] = ()) -> None:
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}  # as docs/workers.md says
    proc = subprocess.run([*prefix, str(RAY), *args], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def node2_pids() -> list[int]:
    """Processes of node 2: those in another mount namespace than ours."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "ns/mnt") != OUR_MOUNTS:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def cluster_pids(port: int) -> set[int]:
    """The processes of the cluster at `port`: those naming the port, and their descendants."""
    parents: dict[int, int] = {}
    ours: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        ppid = next(x.split()[1] for x in status.splitlines() if x.startswith("PPid:"))
        parents[int(entry.name)] = int(ppid)
        if str(port) in cmdline and "ray" in cmdline:
            ours.add(int(entry.name))
    grew = True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= more
        grew = bool(more)
    return ours


def on_node2(pid: int) -> bool:
    try:
        return os.readlink(f"/proc/{pid}/ns/mnt") != OUR_MOUNTS
    except OSError:
        return False


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """The head has 2 CPUs, node 2 has 5: three CPU workers all start on node 2 (most room)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-m", "true"]).returncode != 0:
        pytest.skip("needs `unshare -m` (root or user namespaces) to hide the run directory from node 2")
    hidden = tmp_path_factory.getbasetemp()
    port = _free_port()
    address = f"127.0.0.1:{port}"
    _ray(
        "start",
        "--head",
        "--node-ip-address",
        "127.0.0.1",
        "--port",
        str(port),
        "--num-cpus",
        "2",
        "--num-gpus",
        "0",
        "--include-dashboard",
        "false",
        "--disable-usage-stats",
    )
    try:
        _ray(
            "start",
            "--address",
            address,
            "--node-ip-address",
            "127.0.0.1",
            "--num-cpus",
            "5",
            "--num-gpus",
            "0",
            "--disable-usage-stats",
            prefix=(
                "unshare",
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                f'mount -t tmpfs none "{hidden}" && exec "$0" "$@"',
            ),
        )
        yield address
    finally:
        # ours only: not `ray stop`, which would stop every Ray on this machine
        for pid in cluster_pids(port) | set(node2_pids()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        current = Path("/tmp/ray/ray_current_cluster")  # `ray start` noted our head for ray.init(): unnote it
        if current.exists() and current.read_text().strip().endswith(f":{port}"):
            current.unlink()


def harness(config: Path, address: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "games",
            "--config",
            str(config),
            "--quiet",
            "--ray",
            address,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def read_events(run: Path) -> list[dict]:
    path = run / "events.jsonl"
    return [json.loads(x) for x in path.read_text().splitlines() if x] if path.exists() else []


def wait_until(what, proc: subprocess.Popen, timeout: float = 90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        found = what()
        if found:
            return found
        if proc.poll() is not None:
            raise AssertionError(f"the run ended first: {proc.communicate()[0]}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out: {proc.communicate()[0]}")


def actor_on_node2(run: Path) -> dict | None:
    """The run_start of a worker that has played a game on node 2 (its actor's pid, its node)."""
    evs = read_events(run)
    played = {e["worker"] for e in evs if e["type"] == "game_done"}
    starts = [e for e in evs if e["type"] == "run_start" and e["worker"] in played and on_node2(e["pid"])]
    return starts[-1] if starts else None


def replacement_playing(run: Path, after: float) -> bool:
    """A worker started after `after` outside node 2 has finished a game."""
    evs = read_events(run)
    started = {
        e["worker"]: e["time"]
        for e in evs
        if e["type"] == "run_start" and e["time"] > after and not on_node2(e["pid"])
    }
    return any(e["type"] == "game_done" and e["time"] > started.get(e["worker"], float("inf")) for e in evs)


def test_the_real_error_line_from_a_node_without_the_model(cluster, tmp_path):
    """The model directory exists where the driver runs, not on node 2: the harness's own line
    (no Ray header, no colour codes) reaches the terminal and events.jsonl."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    config = tmp_path / "hidden.toml"
    config.write_text(f"""
seed = 1
out = "{tmp_path / "run"}"
[model]
name = "hidden"
path = "{model}"
[conditions]
ids = ["fixed-L-G"]
[backend]
kind = "transformers"
[workers]
max_restarts = 0
""")
    proc = harness(config, cluster, "--workers", "1")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 1, out
    fatal = [e for e in events(tmp_path / "run") if isinstance(e, ErrorEvent) and e.fatal]
    assert len(fatal) == 1, out
    message = fatal[0].message
    assert f"model.path: '{model}'" in message and "every node needs the model" in message, message
    assert "\x1b" not in message and "RayTaskError" not in message and "ray::" not in message
    assert "no replacement left" in message and message.splitlines() == [message]
    assert f"harness: {message}" in out
    assert fatal[0].node_id is not None  # the node it died on
    assert "0/1 games" in out


def interrupt(config: Path, run: Path, address: str, signum: int, after_games: int) -> int:
    """Start a run, send `signum` once `after_games` games are on disk; the games it kept."""
    proc = harness(config, address, "--workers", "2")
    wait_until(lambda: len(game_ids(run)) >= after_games, proc)
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "rerun the same command to resume" in out or "interrupted" in out, out
    return len(game_ids(run))


def game_ids(run: Path) -> list[str]:
    path = run / "games.jsonl"
    return [json.loads(x)["game_id"] for x in path.read_text().splitlines()] if path.exists() else []


def test_ctrl_c_then_sigterm_stop_every_worker_and_a_rerun_resumes(cluster, tmp_path):
    config = scripted_config(tmp_path, reps=6, concurrency=2, delay_s=0.1)
    run = tmp_path / "run"
    kept = interrupt(config, run, cluster, signal.SIGINT, after_games=4)
    evs = events(run)
    ends = {e.worker: e.status for e in evs if isinstance(e, RunEndEvent)}
    assert ends == {0: "interrupted", 1: "interrupted"}  # each worker's own run_end, through the driver
    assert not [e for e in evs if isinstance(e, ErrorEvent)]
    assert 4 <= kept < 24
    status = subprocess.run([sys.executable, "-m", "harness", "status", str(run)], capture_output=True,
                            text=True)
    assert "interrupted" in status.stdout, status.stdout

    kept_too = interrupt(config, run, cluster, signal.SIGTERM, after_games=kept + 2)  # a scheduler's stop
    assert kept + 2 <= kept_too < 24
    ends = [e.status for e in events(run) if isinstance(e, RunEndEvent)]
    assert ends == ["interrupted"] * 4

    proc = harness(config, cluster, "--workers", "2")
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert f"24/24 games ({24 - kept_too} this run)" in out
    assert_one_line_per_game(run, 24)


def test_run_survives_a_killed_actor_then_a_lost_node(cluster, tmp_path):
    """All three workers start on node 2, which can't see --out. Kill one actor: its replacement
    avoids node 2. Then kill every process of node 2: its games go back to the queue and the
    workers on the head finish them; every game is written once."""
    config = scripted_config(tmp_path, reps=20, concurrency=2, delay_s=0.5)
    run = tmp_path / "run"
    proc = harness(config, cluster, "--workers", "3")
    try:
        victim = wait_until(lambda: actor_on_node2(run), proc)
        status = subprocess.run([sys.executable, "-m", "harness", "status", str(run)], capture_output=True,
                                text=True)
        assert "| games | games | running |" in status.stdout, status.stdout  # actors' pids are Ray-titled
        killed_at = time.time()
        os.kill(victim["pid"], signal.SIGKILL)
        wait_until(lambda: replacement_playing(run, killed_at), proc)
        for pid in node2_pids():  # node 2 is lost: raylet, agents, actors
            os.kill(pid, signal.SIGKILL)
    finally:
        out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out
    assert "80/80 games" in out, out
    assert_one_line_per_game(run, 80)
    evs = events(run)
    fatal = [e for e in evs if isinstance(e, ErrorEvent) and e.fatal]
    assert len(fatal) >= 2, out  # the killed actor, and at least one worker lost with node 2
    assert all("\x1b" not in e.message and "died:" in e.message for e in fatal)
    assert {e.node_id for e in fatal} == {victim["node_id"]}
    replacements = [e for e in evs if isinstance(e, RunStartEvent) and e.time > killed_at]
    assert replacements and all(e.node_id != victim["node_id"] for e in replacements)
    failed = Counter(e.worker for e in evs if isinstance(e, RunEndEvent) and e.status == "failed")
    assert sum(failed.values()) == len(fatal)
    assert "--- harness: worker" in (run / "workers" / "worker-0.log").read_text()
