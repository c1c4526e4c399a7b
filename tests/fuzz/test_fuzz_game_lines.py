"""Damaged game lines through the run reader and `harness analyze`: the reader keeps what it can and
names the rest; analyze succeeds or prints one line and exits 2; the games that do not add up are
flagged alike from the records and from the flat tables, by the fast and the line-by-line path."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.analysis.consistency import flag_inconsistent, run_rules
from harness.analysis.load import _table_slow, flatten, load_run, read_games
from harness.cli import main
from harness.errors import HarnessError
from harness.game.audit import audit_record
from harness.rundir.reader import read_game_lines
from tests.fuzz.strategies import assert_clean, damaged_json, damaged_lines, run_cli, snapshot

RUN = """
seed = 3
repetitions = 2
[model]
name = "scripted"
path = "unused"
[game]
max_rounds = 4
[guard]
max_retries = 1
extract = false
[conditions]
ids = ["fixed-W-GMP", "variable-L-BASE", "variable-none-HW"]
[backend]
kind = "scripted"
script = ["Final Decision: Bet $30", "Final Decision: Bet $5", "", "Final Decision: Stop", "what?"]
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("games")
    (tmp / "c.toml").write_text(RUN)
    assert main(["run", "games", "--config", str(tmp / "c.toml"), "--out", str(tmp / "run"), "--quiet"]) == 0
    return tmp / "run"


def _lines(run_dir: Path) -> list[bytes]:
    return (run_dir / "games.jsonl").read_bytes().splitlines(keepends=True)


def _copy(run_dir: Path, tmp: str, games: bytes) -> Path:
    out = Path(tmp) / "run"
    out.mkdir()
    shutil.copy(run_dir / "manifest.json", out)
    (out / "games.jsonl").write_bytes(games)
    return out


@given(data=st.data())
def test_reader_keeps_what_it_can(run_dir, data):
    games = data.draw(damaged_lines(_lines(run_dir)))
    with tempfile.TemporaryDirectory() as tmp:
        out = _copy(run_dir, tmp, games)
        try:
            read = read_game_lines(out / "games.jsonl")
        except HarnessError:  # a line of a newer major version: refused with one line
            return
        assert len({g.game_id for g in read.games}) == len(read.games)


@given(data=st.data())
def test_analyze_damaged_games(run_dir, data):
    games = data.draw(damaged_lines(_lines(run_dir)))
    with tempfile.TemporaryDirectory() as tmp:
        out = _copy(run_dir, tmp, games)
        before = snapshot(out)
        code, err = run_cli(["analyze", str(out), "--out", str(Path(tmp) / "report"), "--no-figures",
                             "--bootstrap", "10"])
        assert_clean(code, err, before)


@given(data=st.data())
def test_the_same_games_are_flagged_from_records_and_tables_by_both_paths(run_dir, data):
    """JSON-level damage: each game both read is judged alike by `audit_record` and by analyze's
    step on the flat tables, of the fast path and of the line-by-line path. (The fast path does not
    read every field, so a line missing one it does not read is kept there and skipped by the
    record reader: only games both keep are compared.)"""
    lines = _lines(run_dir)
    picked = data.draw(st.lists(st.integers(0, len(lines) - 1), min_size=1, max_size=3, unique=True))
    for i in picked:
        lines[i] = (json.dumps(data.draw(damaged_json(json.loads(lines[i])))) + "\n").encode()
    rules = run_rules(json.loads((run_dir / "manifest.json").read_text()))
    with tempfile.TemporaryDirectory() as tmp:
        out = _copy(run_dir, tmp, b"".join(lines))
        try:
            records = read_game_lines(out / "games.jsonl").games
        except HarnessError:
            return
        run = load_run(out)
        expected = {g.game_id: audit_record(g, rules) for g in records}
        both = [gid for gid in run.games["game_id"] if gid in expected]
        flagged = dict(line.split(": ", 1) for line in run.inconsistent)
        assert {gid: flagged.get(gid, "") for gid in both} == {gid: expected[gid] for gid in both}
        by_path = []
        for table, _ in (read_games(out / "games.jsonl"), _table_slow(out / "games.jsonl")):
            games, rounds = flatten(table)
            why = flag_inconsistent(games, rounds, rules)
            flags = dict(zip(games["game_id"], games["inconsistent"], strict=True))
            by_path.append({gid: flag for gid, flag in flags.items() if gid in expected})
            assert len(why) == int(games["inconsistent"].sum())
        assert by_path[0] == by_path[1]
