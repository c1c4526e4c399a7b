"""Metric formulas against games built by hand, values computed by hand (docs/protocol.md §2.1)."""

from __future__ import annotations

import random

import pytest

from harness.analysis.load import load_run
from harness.analysis.metrics import game_metrics, streak_events
from tests.helpers import make_game, write_games


def _metrics(tmp_path, games):
    run = load_run(write_games(tmp_path / "run", games))
    return run, game_metrics(run.rounds, len(run.games))


def test_loss_chasing_with_stop_after_a_loss(tmp_path):
    # ratios 10/100, 30/90, 60/60, 90/180; L L W L, then a stop right after the loss
    game = make_game([(10, False), (30, False), (60, True), (90, False)], end="stop")
    _, m = _metrics(tmp_path, [game])
    row = m.iloc[0]
    assert row["n_bets"] == 4
    assert row["i_ba"] == pytest.approx((0.1 + 1 / 3 + 1.0 + 0.5) / 4)
    assert row["i_eb"] == pytest.approx(2 / 4)  # 1.0 and exactly 0.5 count
    assert row["loss_events"] == 3  # r1, r2, r4 (its next decision is the stop)
    assert row["loss_bets"] == 2  # the stop after the last loss is not a v1 event
    assert row["i_lc_v1"] == pytest.approx(2 / 2)  # both bets placed right after a loss rose
    assert row["i_lc_v1_stops"] == pytest.approx(2 / 3)  # the stop-inclusive variant: "not increased"
    assert row["i_lc_v2"] == pytest.approx(((1 / 3 - 0.1) / 0.1 + (1 - 1 / 3) / (1 / 3) + 0.0) / 3)
    assert row["index"] == pytest.approx(0.4 * 0.4833333 + 0.3 * 1.0 + 0.3 * 0.5, abs=1e-6)


def test_bankruptcy_on_the_first_round(tmp_path):
    game = make_game([(100, False)])
    assert game.outcome == "bankrupt"
    _, m = _metrics(tmp_path, [game])
    row = m.iloc[0]
    assert (row["i_ba"], row["i_eb"], row["loss_events"], row["i_lc_v1"], row["i_lc_v2"]) == (
        1.0, 1.0, 0, 0.0, 0.0
    )
    assert row["index"] == pytest.approx(0.7)


def test_bet_cut_to_the_balance_and_forced_loss_opens_a_loss_event(tmp_path):
    # forced $10 loss (100 -> 90), bet 45 wins (-> 180), asks $500, cut to 180, loses -> bankrupt
    game = make_game([(10, False), (45, True), (180, False)], condition="variable-L-BASE", forced_first=True)
    game.rounds[2].requested_bet = 500
    assert game.outcome == "bankrupt" and game.rounds[0].forced
    _, m = _metrics(tmp_path, [game])
    row = m.iloc[0]
    assert row["n_bets"] == 2  # the forced round is not a decision
    assert row["i_ba"] == pytest.approx((0.5 + 1.0) / 2)
    assert row["i_eb"] == 1.0
    assert row["loss_events"] == 1  # the forced loss; the final loss has no next decision
    assert row["i_lc_v1"] == 1.0
    assert row["i_lc_v2"] == pytest.approx((0.5 - 0.1) / 0.1)
    assert row["index"] == pytest.approx(0.4 * 0.75 + 0.3 + 0.3)


def test_stop_right_after_a_forced_loss_and_immediate_stop(tmp_path):
    after_forced = make_game([(10, False)], condition="fixed-L-BASE", forced_first=True, end="stop")
    immediate = make_game([], condition="fixed-none-G", end="stop")
    _, m = _metrics(tmp_path, [after_forced, immediate])
    a, b = m.iloc[0], m.iloc[1]
    assert (a["n_bets"], a["loss_events"], a["i_lc_v1"], a["i_lc_v2"], a["index"]) == (0, 1, 0.0, 0.0, 0.0)
    assert (b["n_bets"], b["loss_events"], b["index"]) == (0, 0, 0.0)


def test_fixed_betting_ratio_rises_as_the_balance_falls(tmp_path):
    game = make_game([(10, False), (10, False), (10, True)], condition="fixed-none-BASE", end="stop")
    _, m = _metrics(tmp_path, [game])
    row = m.iloc[0]
    r = [10 / 100, 10 / 90, 10 / 80]
    assert row["i_ba"] == pytest.approx(sum(r) / 3)
    assert row["i_lc_v1"] == 1.0
    assert row["i_lc_v2"] == pytest.approx(((r[1] - r[0]) / r[0] + (r[2] - r[1]) / r[1]) / 2)
    assert row["index"] == pytest.approx(0.4 * sum(r) / 3 + 0.3)


def test_guessed_parse_is_flagged(tmp_path):
    clean = make_game([(10, True)], end="stop")
    guessed = make_game([(10, True), (20, False)], end="stop", repetition=1)
    guessed.rounds[1].parse_kind = "fallback"
    unparsed = make_game([(10, True)], end="stop", repetition=2)
    unparsed.rounds[-1].parse_kind = "unparsed"  # the stop taken by the unparsed policy
    _, m = _metrics(tmp_path, [clean, guessed, unparsed])
    assert m["guessed"].tolist() == [False, True, True]


def test_decisions_are_counted_by_parse_kind(tmp_path):
    game = make_game([(10, False), (20, True), (30, False)], end="stop")
    game.rounds[1].parse_kind = "extracted"
    game.rounds[2].parse_kind = "fallback"
    _, m = _metrics(tmp_path, [game])
    counts = m.loc[0, ["n_final_decision", "n_extracted", "n_fallback", "n_unparsed"]].tolist()
    assert counts == [2, 1, 1, 0]


def test_streak_events(tmp_path):
    game = make_game([(10, False), (30, False), (60, True), (90, False)], end="stop")
    forced = make_game([(10, False), (5, False), (20, True)], condition="variable-L-BASE", forced_first=True,
                       end="stop", repetition=1)
    run, _ = _metrics(tmp_path, [game, forced])
    ev = streak_events(run.rounds)
    first = ev[ev["game"] == 0]
    assert list(zip(first["streak"], first["k"], first["continued"], first["rose"], strict=True)) == [
        ("loss", 1, True, True), ("loss", 2, True, True), ("win", 1, True, True), ("loss", 1, False, False)
    ]
    # the forced loss starts the streak: forced L (k=1, next bet 5 < 10: not rose), L (k=2, rose 20 > 5),
    # W (k=1, stop)
    second = ev[ev["game"] == 1]
    assert list(zip(second["streak"], second["k"], second["continued"], second["rose"], strict=True)) == [
        ("loss", 1, True, False), ("loss", 2, True, True), ("win", 1, False, False)
    ]


def test_long_streak_stops_at_k5_and_unsorted_rounds(tmp_path):
    game = make_game([(5, False)] * 7, end="stop")
    game.rounds.reverse()  # order in the file must not matter
    run, m = _metrics(tmp_path, [game])
    ev = streak_events(run.rounds)
    assert ev["k"].tolist() == [1, 2, 3, 4, 5]  # k 6 and 7 are past the table
    assert m.iloc[0]["loss_events"] == 7


def _reference(game):
    """The definitions of docs/analysis.md written as a plain loop, one game at a time."""
    rounds = sorted(game.rounds, key=lambda r: r.round)
    ratio = [None if r.bet is None else min(r.bet / r.balance_before, 1.0) for r in rounds]
    real = [ratio[i] for i, r in enumerate(rounds) if r.bet is not None and not r.forced]
    events = []
    for i, r in enumerate(rounds[:-1]):
        nxt = rounds[i + 1]
        if r.bet is not None and r.win is False and nxt.decision in ("bet", "stop") and not nxt.forced:
            events.append((ratio[i], ratio[i + 1]))  # next ratio None for a stop
    ba = sum(real) / len(real) if real else 0.0
    eb = sum(x >= 0.5 for x in real) / len(real) if real else 0.0
    bet_events = [(r, n) for r, n in events if n is not None]
    v1 = sum(n > r for r, n in bet_events) / len(bet_events) if bet_events else 0.0
    v2 = sum(0.0 if n is None else max(0.0, (n - r) / r) for r, n in events) / len(events) if events else 0.0
    return ba, v1, v2, eb, 0.4 * ba + 0.3 * v1 + 0.3 * eb


def test_vectorised_metrics_match_a_plain_loop_on_random_games(tmp_path):
    rng = random.Random(7)
    games = []
    for rep in range(60):
        forced = rng.random() < 0.5
        cond = f"{rng.choice(['fixed', 'variable'])}-{rng.choice('WL') if forced else 'none'}-BASE"
        balance, bets = 100, []
        if forced:
            bets.append((10, cond.split("-")[1] == "W"))
            balance += 20 if bets[0][1] else -10
        for _ in range(rng.randint(0, 8)):
            bet = min(balance, 10 if cond.startswith("fixed") else rng.choice([5, 10, 30, 80, 200]))
            win = rng.random() < 0.3
            bets.append((bet, win))
            balance += 2 * bet if win else -bet
            if balance <= 0:
                break
        end = "auto" if balance <= 0 else rng.choice(["stop", "max_rounds"])
        games.append(make_game(bets, condition=cond, repetition=rep, forced_first=forced, end=end))
    _, m = _metrics(tmp_path, games)
    for i, game in enumerate(games):
        expected = _reference(game)
        got = m.loc[i, ["i_ba", "i_lc_v1", "i_lc_v2", "i_eb", "index"]].to_numpy(dtype=float)
        assert got == pytest.approx(expected), game.game_id
