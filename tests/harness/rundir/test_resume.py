"""Resume after a real SIGKILL of a real `harness run games` process."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.records import GAME_ADAPTER
from harness.rundir.reader import read_game_lines


def start_run(config: Path, out: Path) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "games", "--config", str(config), "--out", str(out),
         "--quiet"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
    )


def complete_lines(path: Path) -> list[bytes]:
    if not path.exists():
        return []
    data = path.read_bytes()
    return data[: data.rfind(b"\n") + 1].splitlines(keepends=True) if b"\n" in data else []


def kill_after(proc: subprocess.Popen, games: Path, n_lines: int, timeout: float = 600) -> list[bytes]:
    """SIGKILL the run once `n_lines` games are on disk; return the complete lines at that moment."""
    deadline = time.time() + timeout
    while len(complete_lines(games)) < n_lines:
        assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read().decode()[-2000:]}"
        assert time.time() < deadline, "run made no progress"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    return complete_lines(games)


def assert_one_line_per_game(games: Path, expected: int, before_kill: list[bytes]) -> None:
    lines = games.read_bytes().splitlines(keepends=True)
    ids = [GAME_ADAPTER.validate_json(x).game_id for x in lines]
    assert len(ids) == expected == len(set(ids)), "a game is missing or duplicated"
    assert lines[: len(before_kill)] == before_kill, "a completed game changed or was lost"


SCRIPTED = """
seed = 5
repetitions = 10
concurrency = 8
[model]
name = "scripted"
path = "unused"
[conditions]
ids = ["fixed-W-GMP", "variable-L-BASE", "variable-none-HW", "fixed-none-BASE"]
[backend]
kind = "scripted"
script_delay_s = 0.01
script = [
    "Final Decision: Bet $10", "Final Decision: Bet $20", "Final Decision: Stop", "Final Decision: Bet $5",
]
"""


def test_sigkill_many_times_scripted(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text(SCRIPTED)
    out = tmp_path / "run"
    games = out / "games.jsonl"
    kept: list[bytes] = []
    for n in (3, 12, 25):
        kept = kill_after(start_run(cfg, out), games, n)
    proc = start_run(cfg, out)
    assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-2000:]
    assert_one_line_per_game(games, 40, kept)


REAL = """
seed = 1
repetitions = 3
concurrency = 2
[model]
name = "SmolLM2-135M-Instruct"
path = "embedded:smollm2-135m-instruct"
dtype = "float32"
style = "base"
[generation]
max_new_tokens = 8
[game]
max_rounds = 4
[conditions]
ids = ["fixed-L-GMP", "variable-W-BASE"]
[backend]
device = "cpu"
"""


@pytest.mark.model
def test_sigkill_real_model_run_resumes_exactly(tmp_path, smollm2_path):
    cfg = tmp_path / "real.toml"
    cfg.write_text(REAL)
    out = tmp_path / "run"
    games = out / "games.jsonl"
    before = kill_after(start_run(cfg, out), games, 2)
    with open(games, "ab") as f:  # as if the kill had torn a line mid-write
        f.write(b'{"type":"game","game_id":"torn')
    proc = start_run(cfg, out)
    assert proc.wait(timeout=900) == 0, proc.stderr.read().decode()[-2000:]
    assert_one_line_per_game(games, 6, before)
    read = read_game_lines(games)
    assert not read.unreadable and all(g.model == "SmolLM2-135M-Instruct" for g in read.games)
