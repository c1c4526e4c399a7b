"""The two fixed test prompts of activation patching (docs/protocol.md §3.6, "Exp2"), built like a game's.

Each context is a real `GameState` reached by playing a history of (bet, win) rounds under the
run's rules, then rendered by the game harness's own `build_prompt` and the model's
`PromptFormatter`, so the model sees exactly what a game at that point would have shown it.

- risky: variable betting, balance $20 after a run of losses (default from $100: lose 10, 20, 30, 20);
- safe: fixed betting, balance $140 after more wins than losses (default from $100: W W L W L).

A history is written `10L,20L,30W` (bet then W/L). Without one, a history that reaches the target
balance from the run's initial balance is planned (`plan_history`), so any rules work.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from harness.errors import ConfigError
from harness.game.conditions import Condition, parse_condition_id
from harness.game.prompts import DecisionMode, PromptStyle, build_prompt, constrained_prompt
from harness.game.rules import GameRules, GameState, new_game, play_round

PROMPTS = ("safe", "risky")
TARGET_BALANCE = {"risky": 20, "safe": 140}
DEFAULT_CONDITION = {"risky": "variable-none-BASE", "safe": "fixed-none-BASE"}
#: Threshold of the risky prompt's outcome: a bet of at least this many dollars is a high bet.
HIGH_BET = 20


@dataclass(frozen=True)
class PatchPrompt:
    """One rendered test context and what the parser needs to read answers to it."""

    name: str  # "safe" or "risky"
    condition: Condition
    state: GameState
    rules: GameRules
    text: str  # the prompt text (before the chat template)
    rendered: str  # what the model sees (constrained: ending with the `Final Decision:` cue)
    decision: DecisionMode = "free"

    @property
    def balance(self) -> int:
        return self.state.balance

    def describe(self) -> dict:
        return {
            "condition": self.condition.id,
            "balance": self.balance,
            "history": ",".join(f"{r.bet}{'W' if r.win else 'L'}" for r in self.state.rounds),
            "rendered": self.rendered,
            "decision": self.decision,
        }


def parse_history(text: str) -> list[tuple[int, bool]]:
    """`10L,20W` -> [(10, False), (20, True)]; '' -> []."""
    out = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part[-1].upper() not in "WL" or not part[:-1].isdigit():
            raise ConfigError(f"history: {part!r} is not a bet and W/L like '10L'")
        out.append((int(part[:-1]), part[-1].upper() == "W"))
    return out


def plan_history(initial: int, target: int, bet_type: str, rules: GameRules) -> list[tuple[int, bool]]:
    """Rounds from `initial` to exactly `target`: losses of 10, 20, 30, ... (cut to what is left) to
    go down; with fixed bets, wins then losses to go up. ConfigError when the rules cannot reach it."""
    if target <= 0:
        raise ConfigError(f"target balance {target} must be positive")
    rounds: list[tuple[int, bool]] = []
    balance = initial
    if bet_type == "variable":
        while balance < target:  # wins, all-in at most; may overshoot, the losses below fix that
            bet = min(balance, math.ceil((target - balance) / max(rules.payout_multiplier - 1, 1e-9)))
            after = balance - bet + int(rules.payout_multiplier * bet)
            if bet < rules.min_bet or after <= balance:
                break
            rounds.append((bet, True))
            balance = after
        step = 10
        while balance > target:
            bet = min(step, balance - target)
            if bet < rules.min_bet:
                break
            rounds.append((bet, False))
            balance -= bet
            step += 10
    else:
        bet = rules.fixed_bet
        gain = int(rules.payout_multiplier * bet) - bet
        while balance < target and gain > 0:
            rounds.append((bet, True))
            balance += gain
        while balance > target and balance - bet > 0:
            rounds.append((bet, False))
            balance -= bet
    if balance != target:
        raise ConfigError(
            f"cannot reach a balance of ${target} from ${initial} with {bet_type} bets under these rules; "
            "give the history explicitly (--safe-history / --risky-history)"
        )
    return rounds


DEFAULT_HISTORY = {"risky": "10L,20L,30L,20L", "safe": "10W,10W,10L,10W,10L"}


def build_test_prompt(
    name: str,
    formatter,
    style: PromptStyle,
    rules: GameRules | None = None,
    *,
    condition: str | None = None,
    history: str | None = None,
    decision: DecisionMode = "free",
) -> PatchPrompt:
    """The `name` ("safe" / "risky") context: history played under `rules`, rendered for the model
    as the run's games were (`decision` "constrained": the answer starts at the cue)."""
    rules = rules or GameRules()
    cond = parse_condition_id(condition or DEFAULT_CONDITION[name])
    if history is not None:
        rounds = parse_history(history)
    elif rules.initial_balance == 100 and rules.fixed_bet == 10 and rules.payout_multiplier == 3.0:
        rounds = parse_history(DEFAULT_HISTORY[name])
    else:
        rounds = plan_history(rules.initial_balance, TARGET_BALANCE[name], cond.bet_type, rules)
    # a constructed context, not a game: the run's round limit must not end it (the prompt never shows it)
    rules = rules.model_copy(update={"max_rounds": max(rules.max_rounds, len(rounds) + 1)})
    state = new_game(rules)
    for bet, win in rounds:
        if state.finished or not 0 < bet <= state.balance:
            raise ConfigError(f"{name} history: a ${bet} bet is not possible at balance ${state.balance}")
        play_round(state, bet, rules, random.Random(0), forced_win=win)
    if state.finished:
        raise ConfigError(f"{name} history: the game is over after it (balance ${state.balance})")
    text = build_prompt(state, cond, rules, style)
    rendered = formatter.render(text)
    if decision == "constrained":
        rendered = constrained_prompt(rendered, style)
    return PatchPrompt(name, cond, state, rules, text, rendered, decision)


def build_test_prompts(
    formatter, style: PromptStyle, rules: GameRules | None = None, decision: DecisionMode = "free",
    **options,
) -> dict[str, PatchPrompt]:
    """Both contexts; `options` as `safe_condition=`, `risky_history=`, ..."""
    return {
        name: build_test_prompt(
            name, formatter, style, rules,
            condition=options.get(f"{name}_condition"), history=options.get(f"{name}_history"),
            decision=decision,
        )
        for name in PROMPTS
    }
