"""A run's games as a person reads them: conditions, a condition's games, a game's rounds.

Pure views over the records the run reader gives (`harness.rundir.reader.RunFiles`): `harness show`
prints them and the monitor's transcript screens show them. A round's prompt holds the whole game so
far, so each round view leads with the part of its prompt that is new since the previous round.
"""

from __future__ import annotations

import difflib

from pydantic import BaseModel, Field

from harness.records import OUTCOMES, GameRecord, RoundRecord


class ConditionSummary(BaseModel):
    condition: str
    games: int
    outcomes: dict[str, int] = Field(description="Games per outcome (only those that occur).")
    mean_rounds: float
    mean_final_balance: float


class GameSummary(BaseModel):
    game_id: str
    condition: str
    repetition: int
    outcome: str
    rounds: int = Field(description="Rounds with a bet, the forced round included.")
    final_balance: int
    retries: int


class RoundView(BaseModel):
    round: int
    forced: bool
    balance_before: int
    decision: str | None
    bet: int | None
    requested_bet: int | None
    win: bool | None
    balance_after: int
    parse_kind: str | None
    retries: int
    empty_retries: int
    unparsed_retries: int
    timeouts: int
    transport_retries: int
    seed: int | None
    finish_reason: str | None
    tokens_in: int
    tokens_out: int
    latency_s: float
    new_prompt: str | None = Field(description="The lines of the prompt not in the previous round's prompt.")
    prompt: str | None
    response: str | None
    extract_prompt: str | None = Field(description="The decision step's prompt (extraction or follow-up).")
    extract_response: str | None


class GameView(BaseModel):
    game: GameSummary
    seed: int
    model: str
    invalid_reason: str | None
    rounds: list[RoundView]


def new_part(prompt: str | None, previous: str | None) -> str | None:
    """The lines of `prompt` that `previous` does not have, in order (the whole prompt for the first)."""
    if prompt is None:
        return None
    if previous is None:
        return prompt
    old, new = previous.splitlines(), prompt.splitlines()
    added: list[str] = []
    for tag, _, _, j1, j2 in difflib.SequenceMatcher(a=old, b=new, autojunk=False).get_opcodes():
        if tag in ("insert", "replace"):
            added.extend(new[j1:j2])
    return "\n".join(added)


def game_summary(game: GameRecord) -> GameSummary:
    return GameSummary(game_id=game.game_id, condition=game.condition.id, repetition=game.repetition,
                       outcome=game.outcome, rounds=game.n_rounds, final_balance=game.final_balance,
                       retries=game.retries)


def round_view(r: RoundRecord, previous_prompt: str | None) -> RoundView:
    """The round's record fields, and the part of its prompt new since `previous_prompt`."""
    same = r.model_dump(include=set(RoundView.model_fields) - {"new_prompt"})
    return RoundView(**same, new_prompt=new_part(r.prompt, previous_prompt))


def game_view(game: GameRecord) -> GameView:
    rounds, previous = [], None
    for r in game.rounds:
        rounds.append(round_view(r, previous))
        previous = r.prompt if r.prompt is not None else previous
    return GameView(game=game_summary(game), seed=game.seed, model=game.model,
                    invalid_reason=game.invalid_reason, rounds=rounds)


def conditions(games: list[GameRecord]) -> list[ConditionSummary]:
    """One row per condition, in the order the conditions first appear."""
    groups: dict[str, list[GameRecord]] = {}
    for g in games:
        groups.setdefault(g.condition.id, []).append(g)
    out = []
    for cid, gs in groups.items():
        counts = {o: sum(g.outcome == o for g in gs) for o in OUTCOMES}
        out.append(ConditionSummary(
            condition=cid, games=len(gs), outcomes={o: n for o, n in counts.items() if n},
            mean_rounds=sum(g.n_rounds for g in gs) / len(gs),
            mean_final_balance=sum(g.final_balance for g in gs) / len(gs),
        ))
    return out


def condition_games(games: list[GameRecord], condition: str) -> list[GameSummary]:
    """The condition's games by repetition."""
    return [game_summary(g) for g in sorted(games, key=lambda g: g.repetition) if g.condition.id == condition]
