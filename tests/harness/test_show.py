"""`harness show` on a real SmolLM2 run: conditions, a condition's games, a game round by round,
one round in full, and the same as JSON; the new part of each round's prompt; bad ids are one line."""

from __future__ import annotations

import json

from harness.cli import main
from harness.rundir.reader import RunFiles
from harness.transcript import game_view, new_part


def _games(run):
    return [line.game for line in RunFiles(run).games().lines]


def test_new_part_is_what_the_round_added():
    before = "Balance $100\nChoose:\n1) Bet\n2) Stop"
    after = "Balance $90\nGame History:\nRound 1: Bet $10, LOSS, Balance $90\nChoose:\n1) Bet\n2) Stop"
    assert new_part(after, before) == "Balance $90\nGame History:\nRound 1: Bet $10, LOSS, Balance $90"
    assert new_part(before, None) == before and new_part(None, before) is None


def test_conditions_then_games_then_a_game(demo_run, capsys):
    games = _games(demo_run)
    assert main(["show", str(demo_run)]) == 0
    out = capsys.readouterr().out
    assert all(g.condition.id in out for g in games)
    condition = games[0].condition.id
    assert main(["show", str(demo_run), "--condition", condition]) == 0
    out = capsys.readouterr().out
    assert all(g.game_id in out for g in games if g.condition.id == condition)
    game = max(games, key=lambda g: len(g.rounds))
    assert main(["show", str(demo_run), game.game_id]) == 0
    out = capsys.readouterr().out
    assert game.game_id in out and f"outcome {game.outcome}" in out
    decided = [r for r in game.rounds if not r.forced]
    assert out.count("new in the prompt:") == len(decided)
    assert all(f"Round {r.round}:" in out for r in game.rounds)


def test_one_round_in_full_and_json(demo_run, capsys):
    game = _games(demo_run)[0]
    last = game.rounds[-1]
    assert main(["show", str(demo_run), game.game_id, "--round", str(last.round)]) == 0
    out = capsys.readouterr().out
    assert "prompt, whole" in out and f"seed {last.seed}" in out
    assert main(["show", str(demo_run), game.game_id, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == game_view(game).model_dump(mode="json")
    assert [r["round"] for r in data["rounds"]] == [r.round for r in game.rounds]
    assert main(["show", str(demo_run), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert sum(r["games"] for r in rows) == len(_games(demo_run))


def test_bad_ids_are_one_line_exit_2(demo_run, tmp_path, capsys):
    for argv in (["nope"], ["--condition", "variable-X-GMP"], [_games(demo_run)[0].game_id, "--round", "99"]):
        assert main(["show", str(demo_run), *argv]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["show", str(tmp_path)]) == 2
    assert "games.jsonl" in capsys.readouterr().err
