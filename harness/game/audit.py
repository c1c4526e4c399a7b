"""Does a game line add up under the rules? The check a reader makes before it trusts a game.

A game line could have been edited, damaged or written by a broken tool: a "bankrupt" game with a
balance of -500, `n_rounds` 99 with 2 rounds present, no rounds at all. Each is a game the rules
(`harness.game.rules.play_round`) cannot produce, so a reader flags it rather than report it as
given. The checks, per game:
- it has rounds, numbered 1, 2, ...; only round 1 may be the forced round;
- each round's balance follows the previous one's (round 1 starts at `initial_balance`); a round with
  a bet moves it by the bet (`0 < bet <= balance`) and, on a win, `int(payout_multiplier * bet)`; a
  round without one (a stop, no decision) leaves it;
- `n_rounds`, `total_bet` and `final_balance` are what the rounds say;
- the outcome fits the end: `bankrupt` exactly when the balance is 0 (never below), `stopped` after
  a stop, `no_decision` / `invalid` after a round without a decision, `max_rounds` at `max_rounds`
  bets; a stop or a round without a decision only ends a game.
Without the rules (a run directory whose manifest does not give them) the checks that need them
(the start balance, the payout, `max_rounds`) are left out.

It works on columns (numpy arrays, one entry per game and one per round), so a reader checks
100,000 games at once from flat tables, and `audit_record` checks one `GameRecord` the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.game.rules import GameRules
from harness.records import GameRecord

NO_BET = -1
"""`bet` of a round without a bet; `win` of such a round too (1 a win, 0 a loss)."""


@dataclass(frozen=True)
class GameColumns:
    """One entry per game; `outcome` holds strings."""

    outcome: np.ndarray
    final_balance: np.ndarray
    n_rounds: np.ndarray
    total_bet: np.ndarray


@dataclass(frozen=True)
class RoundColumns:
    """One entry per round, a game's rounds together and in order; `game` indexes `GameColumns`.
    `decision`: 'bet', 'stop' or 'none'; `bet` and `win`: NO_BET when no bet was placed."""

    game: np.ndarray
    round: np.ndarray
    forced: np.ndarray
    balance_before: np.ndarray
    balance_after: np.ndarray
    decision: np.ndarray
    bet: np.ndarray
    win: np.ndarray


Check = tuple[np.ndarray, Callable[[int], str]]


def _round_checks(r: RoundColumns, first: np.ndarray, last: np.ndarray,
                  rules: GameRules | None) -> list[tuple[np.ndarray, str]]:
    """(bad-round mask, what is wrong) for each rule a round must keep; a round's own numbers first,
    then how it follows the round before."""
    placed = r.bet != NO_BET
    rows = np.arange(len(r.game))
    position = rows - np.maximum.accumulate(np.where(first, rows, 0)) + 1
    previous_after = np.concatenate([[0], r.balance_after[:-1]])
    loss_after = r.balance_before - r.bet
    checks = [
        (r.round != position, "rounds not numbered 1, 2, ..."),
        (r.forced & (position != 1), "a forced round after round 1"),
        (placed & ((r.bet <= 0) | (r.bet > r.balance_before)), "a bet outside 1..balance"),
        (placed & (r.decision == "stop"), "a stop with a bet"),
        (~placed & (r.decision == "bet"), "a bet decision without a bet"),
        (placed & (r.win != 0) & (r.win != 1), "a bet without a result"),
        (~placed & ((r.win != NO_BET) | (r.balance_after != r.balance_before)), "no bet, a balance moved"),
        (placed & (r.win == 0) & (r.balance_after != loss_after), "a lost bet not taken from the balance"),
        (~placed & ~last, "a stop or a round without a decision before the end"),
    ]
    if rules is None:
        checks.append((placed & (r.win == 1) & (r.balance_after < loss_after), "a win that lost money"))
    else:
        paid = loss_after + np.floor(rules.payout_multiplier * r.bet).astype(np.int64)
        checks.append((placed & (r.win == 1) & (r.balance_after != paid), "a win not paid as the rules say"))
        checks.append((first & (r.balance_before != rules.initial_balance), "not at initial_balance"))
    checks.append((~first & (r.balance_before != previous_after), "not where the round before ended"))
    return checks


def _first_hit(game: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """Per game, the row of its first round where `mask` holds; -1 where none does."""
    where = np.full(n, -1)
    games, index = np.unique(game[mask], return_index=True)
    where[games] = np.nonzero(mask)[0][index]
    return where


def audit(games: GameColumns, rounds: RoundColumns, rules: GameRules | None) -> np.ndarray:
    """What is wrong with each game ('' when it adds up): the first failed check, with its numbers."""
    with np.errstate(all="ignore"):  # damaged numbers may overflow: they are flagged, not warned about
        return _audit(games, rounds, rules)


def _audit(games: GameColumns, r: RoundColumns, rules: GameRules | None) -> np.ndarray:
    n, m = len(games.outcome), len(r.game)
    why = np.full(n, "", dtype=object)
    out, fb, nr, tb = games.outcome, games.final_balance, games.n_rounds, games.total_bet
    first = np.ones(m, dtype=bool)
    first[1:] = r.game[1:] != r.game[:-1]
    last = np.ones(m, dtype=bool)
    last[:-1] = first[1:]
    placed = r.bet != NO_BET
    has = np.bincount(r.game, minlength=n) > 0
    bets = np.bincount(r.game[placed], minlength=n)
    bet_sum = np.zeros(n, dtype=np.int64)
    np.add.at(bet_sum, r.game[placed], r.bet[placed])

    def at_end(values: np.ndarray, empty) -> np.ndarray:
        """Each game's value in its last round; `empty` for a game without rounds."""
        column = np.full(n, empty, dtype=values.dtype)
        column[r.game[last]] = values[last]
        return column

    end_after, end_placed = at_end(r.balance_after, 0), at_end(placed, False)
    end_decision = at_end(r.decision, "")
    round_checks = _round_checks(r, first, last, rules)
    failed = np.full(m, -1)  # per round, the first check it fails
    for k, (mask, _) in enumerate(round_checks):
        failed[(failed < 0) & mask] = k
    where = _first_hit(r.game, failed >= 0, n)  # per game, its first round that fails one
    checks: list[Check] = [
        (~has, lambda i: "no rounds"),
        (fb < 0, lambda i: f"final_balance {fb[i]} is below 0"),
        (where >= 0, lambda i: f"round {r.round[where[i]]}: {round_checks[failed[where[i]]][1]}"),
        (nr != bets, lambda i: f"n_rounds {nr[i]} but {bets[i]} round(s) with a bet"),
        (tb != bet_sum, lambda i: f"total_bet {tb[i]} but the bets add up to {bet_sum[i]}"),
        (has & (fb != end_after), lambda i: f"final_balance {fb[i]} but the rounds end at {end_after[i]}"),
        ((out == "bankrupt") & (fb != 0), lambda i: f"outcome bankrupt with final_balance {fb[i]}"),
        ((out != "bankrupt") & has & (fb == 0), lambda i: f"outcome {out[i]} with final_balance 0"),
        ((out == "bankrupt") & ~end_placed, lambda i: "outcome bankrupt but the last round has no bet"),
        ((out == "stopped") & (end_decision != "stop"), lambda i: "outcome stopped, the last round no stop"),
        (np.isin(out, ["no_decision", "invalid"]) & ((end_decision != "none") | end_placed),
         lambda i: f"outcome {out[i]} but the last round has a decision"),
        ((out == "max_rounds") & ~end_placed, lambda i: "outcome max_rounds but the last round has no bet"),
    ]
    if rules is not None:
        cap = rules.max_rounds
        checks += [
            (nr > cap, lambda i: f"n_rounds {nr[i]} is more than max_rounds {cap}"),
            ((out == "max_rounds") & (nr != cap), lambda i: f"outcome max_rounds after {nr[i]}/{cap} bets"),
            (np.isin(out, ["stopped", "no_decision", "invalid"]) & (nr >= cap),
             lambda i: f"outcome {out[i]} after max_rounds ({cap}) bets"),
        ]
    for mask, say in checks:
        for i in np.nonzero(mask & (why == ""))[0]:
            why[i] = say(int(i))
    return why


def record_columns(games: list[GameRecord]) -> tuple[GameColumns, RoundColumns]:
    """The columns of a list of records (what a flat table of the same lines holds)."""
    rounds = [(i, r) for i, g in enumerate(games) for r in g.rounds]

    def col(values: list, dtype=np.int64) -> np.ndarray:
        return np.array(values, dtype=dtype)

    return (
        GameColumns(
            outcome=col([g.outcome for g in games], object),
            final_balance=col([g.final_balance for g in games]), n_rounds=col([g.n_rounds for g in games]),
            total_bet=col([g.total_bet for g in games]),
        ),
        RoundColumns(
            game=col([i for i, _ in rounds]), round=col([r.round for _, r in rounds]),
            forced=col([r.forced for _, r in rounds], bool),
            balance_before=col([r.balance_before for _, r in rounds]),
            balance_after=col([r.balance_after for _, r in rounds]),
            decision=col([r.decision or "none" for _, r in rounds], object),
            bet=col([NO_BET if r.bet is None else r.bet for _, r in rounds]),
            win=col([NO_BET if r.win is None else int(r.win) for _, r in rounds]),
        ),
    )


def audit_record(game: GameRecord, rules: GameRules | None) -> str:
    """What is wrong with one game ('' when it adds up)."""
    try:
        columns = record_columns([game])
    except OverflowError:
        return "a number beyond 64 bits"
    return str(audit(*columns, rules)[0])
