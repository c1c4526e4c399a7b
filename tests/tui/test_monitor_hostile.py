"""`harness monitor` on hostile input (issue 21): a misspelt path, a study whose pid is absurd, its
own crash: one line or a clean exit code, never a silent wait or exit 0 after a traceback."""

from __future__ import annotations

import pytest

from harness.cli import main
from tests.tui.test_study import make_study, record
from tui.app import MonitorApp
from tui.study import StudyWatch


@pytest.mark.parametrize("path", ["nope", "nope/events.jsonl"])
def test_a_misspelt_path_is_one_line_exit_2(tmp_path, capsys, path):
    assert main(["monitor", str(tmp_path / path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no such directory" in err and str(tmp_path / "nope") in err


def test_a_study_with_an_absurd_pid_reads_as_gone(tmp_path):
    study = make_study(tmp_path)
    study.append(record("games-a", "running", 0, pid=10**20))
    study.append(record("games-b", "running", 0, pid=1))
    read = StudyWatch(study.path).poll()
    assert read.processes == {1: "gone", 10**20: "gone"}


def test_its_own_crash_exits_2(tmp_path, capsys, monkeypatch):
    study = make_study(tmp_path)
    real_run = MonitorApp.run

    def boom(self):
        raise RuntimeError("a bug of the monitor")

    monkeypatch.setattr(MonitorApp, "on_mount", boom)
    monkeypatch.setattr(MonitorApp, "run", lambda self: real_run(self, headless=True))
    assert main(["monitor", str(study.path)]) == 2
