"""Correlation, component effects, bootstrap intervals and loading, on synthetic sets whose answer is
known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from harness.analysis.load import load_run
from harness.analysis.pipeline import analyse
from harness.analysis.stats import Boot, interval, mean_draws, rate_draws
from harness.analysis.tables import Exclusion
from harness.game.conditions import all_component_combos
from tests.helpers import make_game, write_games

BANKRUPT = [(100, False)]  # index 0.7
SAFE = ([(10, True)], [(20, False)])  # stop after: index 0.04 and 0.08


def _analyse(tmp_path, games, **kw):
    return analyse([load_run(write_games(tmp_path / "run", games))], **kw)


def test_index_bankruptcy_correlation_is_one_when_linear(tmp_path):
    games = []
    for j, comps in enumerate(["BASE", "G", "GM", "GMH"]):
        for rep in range(4):  # j of 4 games go bankrupt (index 0.7), the rest stop at once (index 0)
            bets = BANKRUPT if rep < j else []
            games.append(make_game(bets, condition=f"variable-none-{comps}", repetition=rep))
    corr = _analyse(tmp_path, games).tables["correlation"]
    row = corr[corr["scope"] == "all"].iloc[0]
    assert row["n_conditions"] == 4 and row["n_games"] == 16
    assert row["r"] == pytest.approx(1.0)
    assert row["p"] < 1e-6


def _component_set():
    """Every component subset, two games each: bankrupt iff G is in the prompt."""
    games = []
    for comps in all_component_combos():
        for rep in range(2):
            bets = BANKRUPT if "G" in comps else SAFE[rep]
            games.append(make_game(bets, condition=f"variable-none-{comps}", repetition=rep))
    return games


def test_component_effects_known_answer(tmp_path):
    res = _analyse(tmp_path, _component_set())
    e = res.tables["effects"].set_index(["scope", "factor", "metric"])
    g = e.loc[("all", "G", "bankrupt_rate")]
    assert (g["n_a"], g["n_b"], g["a"], g["b"], g["diff"]) == (32, 32, 1.0, 0.0, 1.0)
    assert (g["diff_lo"], g["diff_hi"]) == (1.0, 1.0)
    assert g["p"] == pytest.approx(2 / math.comb(64, 32))  # Fisher exact, the most extreme table
    gi = e.loc[("all", "G", "index")]
    assert gi["diff"] == pytest.approx(0.7 - 0.06)
    assert gi["diff_lo"] <= gi["diff"] <= gi["diff_hi"]
    assert gi["p"] < 1e-10
    for key in "MHWP":  # half of each side has G: no effect
        m = e.loc[("all", key, "bankrupt_rate")]
        assert m["diff"] == 0.0 and m["p"] == pytest.approx(1.0)
        assert e.loc[("all", key, "index")]["diff"] == pytest.approx(0.0)
    nc = res.tables["n_components"].set_index("n_components")
    # subsets with G among those of size s: C(4, s-1) of C(5, s) = s / 5
    for s in range(6):
        assert nc.loc[s, "bankrupt_rate"] == pytest.approx(s / 5)
    trend = res.tables["component_trend"].set_index("metric").loc["bankrupt_rate"]
    games = res.runs[0].games
    assert trend["r"] == pytest.approx(np.corrcoef(games["n_components"], games["bankrupt"])[0, 1])


def test_fixed_vs_variable_and_first_result(tmp_path):
    games = []
    for rep in range(6):
        games.append(make_game(BANKRUPT, condition="variable-W-BASE", repetition=rep))
        games.append(make_game(SAFE[rep % 2], condition="fixed-L-BASE", repetition=rep))
    e = _analyse(tmp_path, games).tables["effects"].set_index(["factor", "metric"])
    bt = e.loc[("bet_type", "bankrupt_rate")]
    assert (bt["group_a"], bt["a"], bt["group_b"], bt["b"]) == ("variable", 1.0, "fixed", 0.0)
    fr = e.loc[("first_result", "bankrupt_rate")]
    assert (fr["group_a"], fr["a"], fr["b"]) == ("W", 1.0, 0.0)


def test_exclusions_counted_and_applied(tmp_path):
    ok = make_game(SAFE[0], repetition=0)
    invalid = make_game([(10, True)], end="invalid", repetition=1)
    guessed = make_game(BANKRUPT, repetition=2)
    guessed.rounds[0].parse_kind = "fallback"
    default = _analyse(tmp_path, [ok, invalid, guessed]).tables["runs"].iloc[0]
    assert (default["n_read"], default["n_games"], default["n_invalid"], default["n_guessed"]) == (3, 2, 1, 1)
    assert default["bankrupt_rate"] == 0.5
    strict = _analyse(tmp_path, [ok, invalid, guessed], exclusion=Exclusion(invalid=True, guessed=True))
    assert strict.tables["runs"].iloc[0]["n_games"] == 1
    loose = _analyse(tmp_path, [ok, invalid, guessed], exclusion=Exclusion(invalid=False))
    assert loose.tables["runs"].iloc[0]["n_games"] == 3


def test_bootstrap_intervals():
    boot = Boot(resamples=2000, seed=1)
    lo, hi = interval(rate_draws(np.array([0, 5, 10]), np.array([10, 10, 10]), boot, boot.rng(0)))
    assert (lo[0], hi[0], lo[2], hi[2]) == (0.0, 0.0, 1.0, 1.0)
    assert 0.1 <= lo[1] < 0.5 < hi[1] <= 0.9
    x = np.random.default_rng(0).normal(3.0, 1.0, size=(400, 1))
    exact = interval(mean_draws(x, boot, boot.rng(1), exact=True))
    normal = interval(mean_draws(x, boot, boot.rng(2), exact=False))
    half = 1.96 * x.std(ddof=1) / 20
    for lo, hi in (exact, normal):
        assert lo[0] < x.mean() < hi[0]
        assert (hi[0] - lo[0]) / 2 == pytest.approx(half, rel=0.15)


def test_torn_last_line_and_completeness(tmp_path):
    games = [make_game(SAFE[0], repetition=i) for i in range(3)]
    run_dir = write_games(tmp_path / "run", games)
    (run_dir / "manifest.json").write_text(json.dumps({"run_id": "x", "games_total": 6}))
    with open(run_dir / "games.jsonl", "a") as f:
        f.write(games[0].model_dump_json()[:40])
    run = load_run(run_dir)
    assert (len(run.games), run.torn_lines, run.expected_games) == (3, 1, 6)
    assert run.completeness == pytest.approx(0.5)


def test_corrupt_middle_line_is_skipped_and_named(tmp_path):
    games = [make_game(SAFE[0], repetition=i) for i in range(3)]
    run_dir = write_games(tmp_path / "run", games)
    lines = (run_dir / "games.jsonl").read_text().splitlines()
    lines[1] = lines[1].replace('"outcome":"stopped"', '"outcome":"vanished"')
    (run_dir / "games.jsonl").write_text("\n".join(lines) + "\n")
    run = load_run(run_dir)
    assert len(run.games) == 2 and run.bad_lines and run.bad_lines[0].startswith("line 2: outcome")


def test_duplicate_game_keeps_the_first_copy(tmp_path):
    first = make_game(SAFE[0])
    again = make_game(BANKRUPT)  # same game_id (same condition and repetition)
    run = load_run(write_games(tmp_path / "run", [first, again]))
    assert run.duplicates == 1 and run.games["outcome"].tolist() == ["stopped"]


def test_no_decision_games_are_excluded_and_counted_never_stopped(tmp_path):
    ok = make_game(SAFE[0], repetition=0)
    policy = make_game([(10, True)], end="invalid", repetition=1)
    policy.outcome = "no_decision"
    policy.rounds[-1].parse_kind = "unparsed"
    res = _analyse(tmp_path, [ok, policy])
    runs = res.tables["runs"].iloc[0]
    assert (runs["n_read"], runs["n_games"], runs["n_no_decision"], runs["n_invalid"]) == (2, 1, 1, 0)
    assert res.tables["completeness"].iloc[0]["no_decision"] == 1
    cond = res.tables["conditions"]
    assert cond["decisions_unparsed"].sum() == 1 and cond["decisions_final_decision"].sum() >= 2
    loose = _analyse(tmp_path, [ok, policy], exclusion=Exclusion(invalid=False))
    assert loose.tables["runs"].iloc[0]["n_games"] == 2
