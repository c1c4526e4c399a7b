"""`harness monitor` and `python -m tui`: arguments and the one-line errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.cli import build_parser, main
from tui.command import run


def test_monitor_is_a_harness_command():
    args = build_parser().parse_args(["monitor", "runs/a", "runs/b", "--stall-after", "30"])
    assert args.func is run
    assert (
        [str(r) for r in args.runs] == ["runs/a", "runs/b"] and args.stall_after == 30 and args.interval == 1
    )


@pytest.mark.parametrize("flag", [["--stall-after", "0"], ["--interval", "-1"]])
def test_bad_numbers_are_one_line_errors(tmp_path, capsys, flag):
    assert main(["monitor", str(tmp_path), *flag]) == 2
    assert "must be > 0" in capsys.readouterr().err


def test_a_file_that_is_not_an_event_file_is_refused(tmp_path, capsys):
    other = tmp_path / "games.parquet"
    other.write_bytes(b"x")
    assert main(["monitor", str(other)]) == 2
    assert "not a run directory" in capsys.readouterr().err


def test_python_dash_m_tui_has_the_same_arguments():
    out = subprocess.run([sys.executable, "-m", "tui", "--help"], capture_output=True, text=True, check=True)
    assert "--stall-after" in out.stdout and "RUN_DIR" in out.stdout
