"""Every reader of a run sees the same games: resume, `harness analyze`, `harness status`, an SAE
pass's reader and the monitor, fed the same damaged run directories (a torn tail, a dead worker's
fragment followed by a game on the same line, a game written twice, an unreadable line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.analysis.load import load_run
from harness.config import load_config
from harness.run.worker_run import pending_games
from harness.rundir.reader import RunFiles
from harness.rundir.store import RunDir
from harness.status.build import build_status
from sae.games import read_games
from tests.helpers import make_game, write_games
from tui.follow import RunFollower
from tui.state import MonitorState

REPS = 6
SAFE, BANKRUPT = [(10, True)], [(60, False), (40, False)]


def _games():
    """Six games of one condition: even repetitions stop, odd ones go bankrupt."""
    return [make_game(SAFE if i % 2 == 0 else BANKRUPT, repetition=i) for i in range(REPS)]


def _line(game) -> str:
    return game.model_dump_json()


def damaged(kind: str, root: Path) -> Path:
    """A run directory of the six games, damaged one way (or every way)."""
    games = _games()
    run = write_games(root / kind, games[:3])
    lines = []
    if kind in ("fragment", "all"):
        lines.append(_line(games[3])[:70] + _line(games[4]))  # worker died mid-line; game 4 follows
    else:
        lines += [_line(games[3]), _line(games[4])]
    if kind in ("duplicate", "all"):
        again = make_game(BANKRUPT, repetition=1)  # game 1 again, another ending: the first copy counts
        again.final_balance = 7
        lines.append(_line(again))
    if kind in ("bad_line", "all"):
        lines.append('{"type":"game","game_id":"x", "this is": not json')
    text = "".join(line + "\n" for line in lines)
    if kind in ("torn", "all"):
        text += _line(games[5])[:-5]  # killed mid-write: no newline
    else:
        text += _line(games[5]) + "\n"
    with open(run / "games.jsonl", "a") as f:
        f.write(text)
    return run


def expected(kind: str) -> dict[str, int]:
    """game_id -> final balance every reader must see."""
    games = _games()
    gone = {"fragment": {3}, "torn": {5}, "all": {3, 5}}.get(kind, set())
    return {g.game_id: g.final_balance for i, g in enumerate(games) if i not in gone}


def seen_by_resume(run: Path) -> set[str]:
    config = load_config(None, {"out": str(run), "repetitions": REPS, "backend.kind": "scripted",
                                "conditions": {"ids": ["variable-none-BASE"]}})
    todo, _ = pending_games(config, RunDir(run))
    return {f"variable-none-BASE-rep{i:03d}" for i in range(REPS)} - {s.game_id for s in todo}


def seen_by_analyze(run: Path) -> dict[str, int]:
    games = load_run(run).games
    return dict(zip(games["game_id"], games["final_balance"].astype(int), strict=True))


def seen_by_status(run: Path) -> tuple[int | None, list[str]]:
    games = next(e for e in build_status(run).experiments if e.kind == "games")
    return games.done, games.diagnoses


def seen_by_sae_pass(run: Path) -> dict[str, int]:
    return {g.game_id: g.final_balance for g in read_games(run)}


def seen_by_monitor(run: Path) -> set[str]:
    follower, state = RunFollower([run]), MonitorState([str(run)])
    state.apply(follower.poll())
    return set(state.games.get((0, "games"), {}))


KINDS = ["torn", "fragment", "duplicate", "bad_line", "all"]


@pytest.mark.parametrize("kind", KINDS)
def test_every_reader_sees_the_same_games(tmp_path, kind):
    run = damaged(kind, tmp_path)
    want = expected(kind)
    read = RunFiles(run).games()
    assert {g.game_id: g.final_balance for g in read.games} == want
    assert seen_by_resume(run) == set(want)
    assert seen_by_analyze(run) == want
    assert seen_by_sae_pass(run) == want
    assert seen_by_monitor(run) == set(want)
    done, diagnoses = seen_by_status(run)
    assert done == len(want)
    assert (read.note() is None) == (not any(d.startswith("games.jsonl:") for d in diagnoses))


@pytest.mark.parametrize("kind", KINDS)
def test_analyze_counts_what_the_reader_counts(tmp_path, kind):
    run = damaged(kind, tmp_path)
    read, loaded = RunFiles(run).games(), load_run(run)
    assert loaded.torn_lines == int(read.torn_tail)
    assert loaded.duplicates == read.duplicates
    assert len(loaded.bad_lines) == len(read.unreadable)
    assert loaded.recovered_lines == read.recovered


def test_status_of_a_run_short_of_its_manifest_total_is_not_complete(tmp_path):
    run = tmp_path / "run"
    RunDir(run).prepare({"seed": 0, "model": {"name": "test-model"}}, games_total=REPS)
    (run / "games.jsonl").write_text("".join(_line(g) + "\n" for g in _games()[:4]))
    games = next(e for e in build_status(run).experiments if e.kind == "games")
    assert (games.state, games.done, games.total) == ("interrupted", 4, REPS)
    assert "4/6 games on disk" in games.note


@pytest.mark.parametrize("field", ["run_id", "seed", "run_seed", "total_won", "started", "wall_s", "type"])
def test_a_line_without_a_required_field_is_read_alike_by_both_analyze_paths(tmp_path, field):
    games = _games()
    run = write_games(tmp_path / "run", games)
    lines = (run / "games.jsonl").read_text().splitlines()
    record = json.loads(lines[2])
    del record[field]
    lines[2] = json.dumps(record)
    (run / "games.jsonl").write_text("\n".join(lines) + "\n")
    kept = {g.game_id: g.final_balance for g in RunFiles(run).games().games}
    assert seen_by_analyze(run) == kept
    assert len(kept) == len(games) - (field != "type")  # a line's type defaults to game
