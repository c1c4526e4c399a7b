"""The game-line audit: every game the runner plays adds up; each kind of damage is named, the
same way from a record and from the analysis's flat tables."""

import json
from collections import Counter

import pytest

from harness.analysis.load import load_run
from harness.cli import main
from harness.config import load_config
from harness.game.audit import audit_record
from harness.records import GameRecord
from harness.rundir.reader import read_game_lines

MIXED = """
seed = 5
repetitions = 6
[model]
name = "scripted"
path = "unused"
[game]
max_rounds = 6
initial_balance = 60
payout_multiplier = 2.5
[guard]
max_retries = 1
extract = false
[conditions]
ids = ["fixed-W-GMP", "fixed-L-BASE", "variable-none-BASE", "variable-L-GM", "variable-W-P"]
[backend]
kind = "scripted"
script = ["Final Decision: Bet $25", "Final Decision: Bet $5", "Final Decision: Bet $60", "",
          "Final Decision: Bet $5", "Final Decision: Stop", "no idea", "no idea", "Final Decision: Bet $15"]
"""


@pytest.fixture(scope="module")
def played(tmp_path_factory):
    """A scripted run whose games end every way a game can end; its directory and rules."""
    tmp = tmp_path_factory.mktemp("audit")
    cfg = tmp / "mixed.toml"
    cfg.write_text(MIXED)
    out = tmp / "run"
    assert main(["run", "games", "--config", str(cfg), "--out", str(out), "--quiet"]) == 0
    return out, load_config(cfg).game


def test_every_game_the_runner_plays_adds_up(played):
    run_dir, rules = played
    games = read_game_lines(run_dir / "games.jsonl").games
    outcomes = Counter(g.outcome for g in games)
    assert set(outcomes) >= {"bankrupt", "stopped", "max_rounds", "no_decision", "invalid"}, outcomes
    assert [audit_record(g, rules) for g in games] == [""] * len(games)
    assert [audit_record(g, None) for g in games] == [""] * len(games)
    run = load_run(run_dir)
    assert run.inconsistent == [] and not run.games["inconsistent"].any()


def _edit(game: GameRecord, **fields) -> GameRecord:
    data = json.loads(game.model_dump_json())
    for dotted, value in fields.items():
        target, *path = dotted.split("__")
        if path:
            data[target][int(path[0])][path[1]] = value
        else:
            data[target] = value
    return GameRecord.model_validate(data)


def _pick(games: list[GameRecord], outcome: str, min_bets: int = 1) -> GameRecord:
    return next(g for g in games if g.outcome == outcome and g.n_rounds >= min_bets)


DAMAGE = [  # (outcome of the game damaged, edits, what the audit says)
    ("stopped", dict(outcome="bankrupt", final_balance=-500), "final_balance -500 is below 0"),
    ("stopped", dict(n_rounds=99), "n_rounds 99 but"),
    ("stopped", dict(rounds=[]), "no rounds"),
    ("stopped", dict(total_bet=1), "total_bet 1 but the bets add up to"),
    ("stopped", dict(final_balance=1_000_000), "final_balance 1000000 but the rounds end at"),
    ("stopped", dict(outcome="max_rounds"), "outcome max_rounds but the last round has no bet"),
    ("bankrupt", dict(outcome="stopped"), "outcome stopped with final_balance 0"),
    ("stopped", {"rounds__0__balance_after": 7}, "round 1:"),
    ("stopped", {"rounds__0__round": 3}, "round 3: rounds not numbered"),
    ("stopped", {"rounds__0__bet": 0}, "round 1: a bet outside 1..balance"),
    ("max_rounds", dict(outcome="stopped"), "outcome stopped, the last round no stop"),
    ("invalid", dict(outcome="stopped"), "outcome stopped, the last round no stop"),
]


@pytest.mark.parametrize("outcome,edits,says", DAMAGE, ids=[d[2] for d in DAMAGE])
def test_damage_is_named(played, outcome, edits, says):
    run_dir, rules = played
    game = _edit(_pick(read_game_lines(run_dir / "games.jsonl").games, outcome), **edits)
    assert says in audit_record(game, rules)


def test_a_win_paid_wrong_needs_the_rules(played):
    run_dir, rules = played
    games = read_game_lines(run_dir / "games.jsonl").games
    game, i = next((g, i) for g in games for i, r in enumerate(g.rounds) if r.win and i == len(g.rounds) - 2)
    more = game.rounds[i].balance_after + 1
    bent = _edit(game, final_balance=game.final_balance + 1, **{f"rounds__{i}__balance_after": more,
                                                                f"rounds__{i + 1}__balance_before": more,
                                                                f"rounds__{i + 1}__balance_after": more})
    assert "a win not paid as the rules say" in audit_record(bent, rules)
    assert audit_record(bent, None) == ""  # payout unknown: a win may pay anything but a loss
    other_start = rules.model_copy(update={"initial_balance": 99})
    assert audit_record(game, other_start) == "round 1: not at initial_balance"


def test_flat_tables_flag_the_same_games_with_the_same_words(played, tmp_path):
    """analyze's step on the flat tables against the record check, for every damage at once."""
    run_dir, rules = played
    games = read_game_lines(run_dir / "games.jsonl").games
    damaged = [_edit(_pick(games, outcome), **edits) for outcome, edits, _ in DAMAGE]
    damaged = [g.model_copy(update={"game_id": f"{g.game_id}-d{i}"}) for i, g in enumerate(damaged)]
    out = tmp_path / "run"
    out.mkdir()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    (out / "manifest.json").write_text(json.dumps(manifest))
    (out / "games.jsonl").write_text("".join(g.model_dump_json() + "\n" for g in games + damaged))
    run = load_run(out)
    assert run.inconsistent == [f"{g.game_id}: {audit_record(g, rules)}" for g in damaged]
    assert int(run.games["inconsistent"].sum()) == len(damaged)
