"""Run directory: torn lines, reading games, manifest compatibility."""

import json

import pytest

from harness.errors import RunDirError
from harness.rundir.jsonl import repair_torn_tail
from harness.rundir.store import RunDir, read_games
from tests.helpers import make_game


def test_repair_torn_tail(tmp_path):
    p = tmp_path / "games.jsonl"
    p.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": 3')
    assert repair_torn_tail(p) == len(b'{"c": 3')
    assert p.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert repair_torn_tail(p) == 0
    p.write_bytes(b"no newline at all")
    repair_torn_tail(p)
    assert p.read_bytes() == b""
    assert repair_torn_tail(tmp_path / "missing.jsonl") == 0


def test_read_games_skips_torn_and_duplicate_lines(tmp_path):
    g1, g2 = make_game([(10, False)], repetition=0), make_game([(10, True)], repetition=1)
    p = tmp_path / "games.jsonl"
    p.write_text(
        g1.model_dump_json() + "\n"
        + g1.model_dump_json().replace('"final_balance":90', '"final_balance":1') + "\nnot json\n"
        + g2.model_dump_json()[:50]
    )
    games, bad = read_games(p)
    assert list(games) == [g1.game_id] and games[g1.game_id].final_balance == 90  # first line wins
    assert bad == 2


def test_manifest_guards_results_affecting_settings(tmp_path):
    run = RunDir(tmp_path / "run")
    config = {"seed": 1, "model": {"name": "m"}, "generation": {}, "game": {}, "guard": {"max_retries": 5}}
    manifest = run.prepare(config, games_total=4)
    assert json.loads(run.manifest_path.read_text())["run_id"] == manifest.run_id
    again = run.prepare(config, games_total=8)
    assert again.run_id == manifest.run_id and again.games_total == 8 and again.resumes
    with pytest.raises(RunDirError, match="seed"):
        run.prepare(config | {"seed": 2}, games_total=4)
    with pytest.raises(RunDirError, match="guard.max_retries"):
        run.prepare(config | {"guard": {"max_retries": 1}}, games_total=4)


def test_read_games_rescues_a_record_glued_to_a_fragment(tmp_path):
    g1, g2 = make_game([(10, False)], repetition=0), make_game([(10, True)], repetition=1)
    p = tmp_path / "games.jsonl"
    p.write_text(g1.model_dump_json()[:40] + g2.model_dump_json() + "\n")
    games, bad = read_games(p)
    assert list(games) == [g2.game_id] and bad == 0
