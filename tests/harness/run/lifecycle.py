"""Helpers for tests that drive `harness run games` as a real process and send it real signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def start_run(config: Path, out: Path, *extra: str) -> subprocess.Popen:
    """`python -m harness run games` in its own session (a signal reaches it alone)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "games", "--config", str(config), "--out", str(out),
         "--quiet", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT, start_new_session=True,
    )


def events(out: Path) -> list[dict]:
    path = out / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def wait_for(proc: subprocess.Popen, ready, timeout: float, what: str) -> None:
    """Poll `ready()` until true; fail with the process's output if it ends or time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(
                f"run ended before {what}: rc {proc.returncode}\n{proc.communicate()[1][-3000:]}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"no {what} within {timeout} s\n{proc.communicate()[1][-3000:]}")
        time.sleep(0.1)


def interrupt(proc: subprocess.Popen, *, twice_after: float | None = None, timeout: float = 120) -> float:
    """SIGINT (and a second one `twice_after` s later); returns seconds from the first to the exit."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    if twice_after is not None:
        time.sleep(twice_after)
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
    proc.wait(timeout=timeout)
    return time.monotonic() - t0


def in_flight(out: Path, run: int = 1) -> bool:
    """A progress event of the `run`-th run in this directory (after its own `run_start`) says
    games are being played: the model is loaded and generating, and that run's signal handlers
    are in place. An earlier run's progress says nothing about a later one."""
    written = events(out)
    starts = [i for i, e in enumerate(written) if e["type"] == "run_start"]
    if len(starts) < run:
        return False
    return any(e["type"] == "progress" and e["in_flight"] > 0 for e in written[starts[run - 1]:])
