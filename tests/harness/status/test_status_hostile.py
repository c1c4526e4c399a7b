"""`harness status` on hostile run directories (issue 21): a pid counts as alive only if it is the
recorded process; a directory where a file belongs is one line, exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from harness.cli import main
from harness.rundir.files import EVENTS_FILE, STATUS_MD
from harness.status.facts import process_state


def _start_line(pid: int, t: float) -> str:
    return json.dumps({"type": "run_start", "time": t, "run_id": "x", "model": "m", "games_total": 3,
                       "pid": pid}) + "\n"


@pytest.mark.parametrize("pid", [0, -5, 1, 10**20, 2**63])
def test_pid_1_and_impossible_pids_are_gone(pid):
    assert process_state(pid, time.time()) == "gone"
    assert process_state(pid) == "gone"


def test_this_process_lives_when_recorded_after_it_started():
    assert process_state(os.getpid(), time.time()) == "alive"
    assert process_state(os.getpid()) == "alive"


def test_a_ray_actor_retitled_by_ray_is_still_the_recorded_process():
    pytest.importorskip("setproctitle")
    code = "import setproctitle, time; setproctitle.setproctitle('ray::WorkerActor'); time.sleep(30)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.time() + 10
        while b"ray::" not in open(f"/proc/{proc.pid}/cmdline", "rb").read() and time.time() < deadline:
            time.sleep(0.02)
        assert process_state(proc.pid, time.time()) == "alive"
    finally:
        proc.kill()
        proc.wait()


def test_a_process_started_after_the_record_is_a_reused_pid():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_state(proc.pid, time.time()) == "alive"
        assert process_state(proc.pid, time.time() - 600) == "gone"
    finally:
        proc.kill()
        proc.wait()


def test_a_live_process_that_is_no_python_is_not_the_run():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert process_state(proc.pid, time.time()) == "gone"
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("pid", [1, 10**20])
def test_status_calls_a_run_whose_pid_is_not_it_died(tmp_path, capsys, pid):
    (tmp_path / EVENTS_FILE).write_text(_start_line(pid, time.time() - 5))
    assert main(["status", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"pid {pid} gone" in out and "Traceback" not in out


def test_events_file_that_is_a_directory_is_one_line(tmp_path, capsys):
    (tmp_path / EVENTS_FILE).mkdir()
    assert main(["status", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and EVENTS_FILE in err and "Is a directory" in err


def test_a_status_file_it_cannot_write_is_one_line(tmp_path, capsys):
    (tmp_path / EVENTS_FILE).write_text(_start_line(10**20, time.time()))
    (tmp_path / "out" / STATUS_MD).mkdir(parents=True)  # as a read-only directory would: the write fails
    assert main(["status", str(tmp_path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("harness: error: ") and "Traceback" not in err
