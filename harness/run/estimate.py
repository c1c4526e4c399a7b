"""What a run will ask of its model before it starts (`harness run games --dry-run`): requests,
prompt tokens and output tokens, and their cost when the config gives prices.

Three scenarios bound the unknown, how long the model plays: every game stops at its first
decision; a reference (the means of the games already in the run directory where there are some,
else a stated assumption); and an upper bound (every game plays every round, every re-ask and the
decision step used, every answer as long as `max_new_tokens`). Pure apart from the tokenizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from pydantic import BaseModel, Field

from harness.config import DEFAULT_MAX_NEW_TOKENS, PricingConfig, RunConfig
from harness.game.conditions import Condition
from harness.game.prompts import build_prompt
from harness.game.rules import GameState, PlayedRound, new_game

#: The reference scenario without games to measure: decision rounds per game and calls per round.
REFERENCE_ROUNDS = 5.0
REFERENCE_CALLS_PER_ROUND = 1.1
#: Tokens per character where no tokenizer is at hand (an endpoint's model): about 4 characters a token.
CHARS_PER_TOKEN = 4.0


class Scenario(BaseModel):
    name: str
    assumption: str = Field(description="What the scenario takes as given.")
    requests: int
    prompt_tokens: int
    output_tokens: int = Field(description="At most: each answer as long as max_new_tokens.")
    cost: float | None = None


class Estimate(BaseModel):
    games: int
    games_done: int
    tokens_counted_by: str = Field(description="'tokenizer' or an approximation.")
    currency: str | None = None
    scenarios: list[Scenario]


def _cost(prompt_tokens: int, output_tokens: int, pricing: PricingConfig | None) -> float | None:
    if pricing is None:
        return None
    return prompt_tokens / 1e6 * pricing.input_per_million + output_tokens / 1e6 * pricing.output_per_million


def _prompts(config: RunConfig, conditions: list[Condition], rounds_before: int) -> list[str]:
    """One prompt per condition after `rounds_before` lost $10 rounds (the longest history shown)."""
    rules = config.game
    out = []
    for cond in conditions:
        state: GameState = new_game(rules)
        for r in range(rounds_before):
            before = state.balance
            state.balance = max(before - rules.fixed_bet, rules.fixed_bet)  # keep it playable for the text
            state.rounds.append(PlayedRound(r + 1, rules.fixed_bet, False, before, state.balance))
        out.append(build_prompt(state, cond, rules, config.model.style))
    return out


def estimate(config: RunConfig, count: Callable[[str], int], counted_by: str, *, games_done: int = 0,
             measured: Sequence[tuple[int, int]] = ()) -> Estimate:
    """The three scenarios for the games not yet done. `count`: tokens of a rendered prompt;
    `measured`: (decision rounds, model calls) of games already played, for the reference."""
    conditions = config.conditions.resolve()
    todo = max(len(conditions) * config.repetitions - games_done, 0)
    max_new = config.generation.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[config.model.style]
    window = config.game.history_window

    def mean_tokens(rounds_before: int) -> float:
        return sum(count(p) for p in _prompts(config, conditions, rounds_before)) / len(conditions)

    first = mean_tokens(0)
    longest = mean_tokens(window) if window else first
    calls_max = 1 + config.guard.max_retries + (1 if config.guard.extract else 0)
    rounds_max = config.game.max_rounds

    def scenario(name: str, assumption: str, rounds: float, calls_per_round: float) -> Scenario:
        requests = todo * rounds * calls_per_round
        # the prompt grows with the history shown (linearly, to `window` rounds), then stays as long
        ks = range(max(math.ceil(rounds), 1))
        mean_prompt = sum(first + (longest - first) * min(k, window) / max(window, 1) for k in ks) / len(ks)
        prompt_tokens = round(requests * mean_prompt)
        output_tokens = round(requests * max_new)
        return Scenario(name=name, assumption=assumption, requests=round(requests),
                        prompt_tokens=prompt_tokens, output_tokens=output_tokens,
                        cost=_cost(prompt_tokens, output_tokens, config.pricing))

    if measured:
        rounds = sum(r for r, _ in measured) / len(measured)
        calls = sum(c for _, c in measured) / max(sum(r for r, _ in measured), 1)
        said = (f"the means of the {len(measured):,} games already played: {rounds:.1f} decision rounds "
                f"a game, {calls:.2f} calls a round")
        reference = scenario("reference", said, max(rounds, 1), calls)
    else:
        reference = scenario("reference", f"{REFERENCE_ROUNDS:g} decision rounds a game, "
                             f"{REFERENCE_CALLS_PER_ROUND:g} calls a round (no games played yet to measure)",
                             min(REFERENCE_ROUNDS, rounds_max), REFERENCE_CALLS_PER_ROUND)
    return Estimate(
        games=todo, games_done=games_done, tokens_counted_by=counted_by,
        currency=config.pricing.currency if config.pricing else None,
        scenarios=[
            scenario("first decision", "every game stops at its first decision, no re-ask", 1, 1),
            reference,
            scenario("upper bound", f"every game plays all {rounds_max} rounds, each with "
                     f"{calls_max} calls (every re-ask and the decision step)", rounds_max, calls_max),
        ],
    )


def approximate_count(text: str) -> int:
    """Tokens of `text` without a tokenizer: characters / 4, rounded up."""
    return int(-(-len(text) // CHARS_PER_TOKEN))
