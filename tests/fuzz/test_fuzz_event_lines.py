"""Damaged event lines through `read_event`, the monitor's follower and state, and `harness status`:
a bad line is refused as a bad line (never another exception), the monitor's view is built, and the
status command succeeds or prints one line and exits 2, changing no file it was given."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from harness.cli import main
from harness.records import SchemaVersionError, read_event
from tests.fuzz.strategies import assert_clean, damaged_bytes, damaged_lines, run_cli, snapshot
from tui.follow import RunFollower
from tui.state import MonitorState

RUN = """
seed = 4
repetitions = 2
progress_interval_s = 0.01
[model]
name = "scripted"
path = "unused"
[game]
max_rounds = 4
[conditions]
ids = ["fixed-W-GMP", "variable-none-HW"]
[backend]
kind = "scripted"
script = ["Final Decision: Bet $10", "Final Decision: Stop"]
script_delay_s = 0.005
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("events")
    (tmp / "c.toml").write_text(RUN)
    assert main(["run", "games", "--config", str(tmp / "c.toml"), "--out", str(tmp / "run"), "--quiet"]) == 0
    return tmp / "run"


def _events(run_dir: Path) -> list[bytes]:
    return (run_dir / "events.jsonl").read_bytes().splitlines(keepends=True)


@given(data=st.data())
def test_read_event_refuses_a_bad_line_as_a_bad_line(run_dir, data):
    lines = _events(run_dir)
    line = data.draw(st.one_of(damaged_bytes(data.draw(st.sampled_from(lines))), st.binary(max_size=64)))
    try:
        read_event(line)
    except (ValidationError, SchemaVersionError):
        pass


@given(data=st.data())
def test_monitor_follows_damaged_events(run_dir, data):
    events = data.draw(damaged_lines(_events(run_dir)))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        run.mkdir()
        (run / "events.jsonl").write_bytes(events)
        state = MonitorState([run.name])
        follower = RunFollower([run])
        for _ in range(2):  # the whole file, then nothing new
            state.apply(follower.poll())
        state.view(time.time(), stall_after=60.0)


@given(data=st.data())
def test_status_of_a_run_with_damaged_events(run_dir, data):
    events = data.draw(damaged_lines(_events(run_dir)))
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(run_dir, run)
        (run / "events.jsonl").write_bytes(events)
        before = snapshot(run)
        code, err = run_cli(["status", str(run)])
        assert_clean(code, err, before)
