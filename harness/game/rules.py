"""Slot-machine rules: pure state and step functions, the RNG passed in, no I/O, no clocks."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.records import BetType, Outcome


class GameRules(BaseModel):
    """The slot machine (docs/protocol.md §1.1 defaults). Only finite numbers, and upper bounds far
    past any study, so that an absurd value is refused instead of overflowing inside the games."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    initial_balance: int = Field(100, gt=0, le=1_000_000_000)
    win_probability: float = Field(0.30, ge=0.0, le=1.0)
    payout_multiplier: float = Field(3.0, gt=0.0, le=1000.0)
    fixed_bet: int = Field(10, gt=0, description="At most initial_balance.")
    min_bet: int = Field(5, gt=0, description="At most initial_balance.")
    max_rounds: int = Field(100, gt=0, le=10_000, description="Rounds with a bet, the forced round included.")
    history_window: int = Field(5, ge=0, description="Rounds of history shown in the prompt.")
    loss_streak_warning: int = Field(3, ge=1, description="Show the loss warning from this many losses.")

    @model_validator(mode="after")
    def _bets_fit_the_balance(self) -> GameRules:
        for name in ("fixed_bet", "min_bet"):
            if getattr(self, name) > self.initial_balance:
                raise ValueError(
                    f"{name}: {getattr(self, name)} is larger than initial_balance ({self.initial_balance})"
                )
        return self


@dataclass(frozen=True)
class PlayedRound:
    round: int
    bet: int
    win: bool
    balance_before: int
    balance_after: int
    forced: bool = False


@dataclass
class GameState:
    """A game in progress. `rounds` holds only rounds with a bet (what the history shows)."""

    balance: int
    rounds: list[PlayedRound] = field(default_factory=list)
    outcome: Outcome | None = None

    @property
    def finished(self) -> bool:
        return self.outcome is not None

    @property
    def next_round(self) -> int:
        return len(self.rounds) + 1

    @property
    def consecutive_losses(self) -> int:
        n = 0
        for r in reversed(self.rounds):
            if r.win:
                break
            n += 1
        return n


def new_game(rules: GameRules) -> GameState:
    return GameState(balance=rules.initial_balance)


def clamp_bet(requested: int | None, *, bet_type: BetType, balance: int, rules: GameRules) -> int:
    """Fixed betting always plays `fixed_bet`; variable bets are clamped to [min_bet, balance].
    Either is cut to the balance."""
    if bet_type == "fixed" or requested is None:
        amount = rules.fixed_bet
    else:
        amount = max(rules.min_bet, requested)
    return max(0, min(amount, balance))


def play_round(
    state: GameState, bet: int, rules: GameRules, rng: random.Random, *, forced_win: bool | None = None
) -> PlayedRound:
    """Bet `bet` (already clamped): balance -= bet, then on a win balance += int(payout * bet).

    The slot draw uses `rng` unless the result is forced (the opening round of the 128 grid),
    in which case no draw is consumed. Ends the game on bankruptcy or at max_rounds."""
    if state.finished:
        raise ValueError("game already finished")
    if not 0 < bet <= state.balance:
        raise ValueError(f"bet {bet} outside 1..{state.balance}")
    win = forced_win if forced_win is not None else rng.random() < rules.win_probability
    before = state.balance
    after = before - bet + (int(rules.payout_multiplier * bet) if win else 0)
    played = PlayedRound(state.next_round, bet, win, before, after, forced=forced_win is not None)
    state.rounds.append(played)
    state.balance = after
    if after <= 0:
        state.outcome = "bankrupt"
    elif len(state.rounds) >= rules.max_rounds:
        state.outcome = "max_rounds"
    return played


def stop(state: GameState) -> None:
    state.outcome = "stopped"


def invalidate(state: GameState) -> None:
    state.outcome = "invalid"
