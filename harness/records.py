"""The records a run writes: one pydantic model per line type of `games.jsonl` and `events.jsonl`.

These files are the interface for stream consumers and the monitor, so every record carries
`schema_version`, models forbid unknown fields, and the JSON Schema is exported to
`docs/schemas/` (`harness schema`). Write with `model_dump_json()`, read with
`GAME_ADAPTER` / `EVENT_ADAPTER`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

SCHEMA_VERSION = 1

BetType = Literal["fixed", "variable"]
FirstResult = Literal["W", "L"]
Outcome = Literal["bankrupt", "stopped", "max_rounds", "no_decision", "invalid"]
Action = Literal["bet", "stop"]
ParseKind = Literal["final_decision", "first_line", "fallback", "extracted", "unparsed", "empty"]
#: Parse kinds that read a decision from the model's own words, not a guess (docs/protocol.md §1).
MODEL_DECISION_KINDS: tuple[ParseKind, ...] = ("final_decision", "first_line", "extracted")
PassKind = Literal["games", "patching", "features", "pathway", "train"]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConditionRecord(_Record):
    """One experimental condition (a cell of the grid)."""

    id: str = Field(description="Stable id, e.g. 'variable-L-GMP' or 'fixed-none-BASE'.")
    bet_type: BetType = Field(description="'fixed' ($10 every round) or 'variable' ($5..balance).")
    first_result: FirstResult | None = Field(
        description="Result of the forced opening $10 round ('W' or 'L'), or null when there is none."
    )
    components: str = Field(description="Prompt components in order GMHWP, e.g. 'GMP'; 'BASE' for none.")


class RoundRecord(_Record):
    """One round: a model decision (bet or stop), or the forced opening round."""

    round: int = Field(description="1-based round number within the game.")
    forced: bool = Field(False, description="True for the forced opening round (no model call).")
    balance_before: int = Field(description="Balance before this round's bet.")
    decision: Action | None = Field(description="'bet', 'stop', or null when no decision could be read.")
    bet: int | None = Field(description="Amount actually bet after clamping; null when no bet was placed.")
    requested_bet: int | None = Field(None, description="Amount the model wrote, before clamping.")
    win: bool | None = Field(description="Slot result; null when no bet was placed.")
    balance_after: int = Field(description="Balance after the round.")
    parse_kind: ParseKind | None = Field(
        description="How the decision was read; null for the forced round."
    )
    retries: int = Field(0, description="Extra model calls this round needed (empty + unparsed + timeouts).")
    empty_retries: int = Field(0, description="Calls re-asked because the answer was empty.")
    unparsed_retries: int = Field(0, description="Calls re-asked because no decision could be read.")
    timeouts: int = Field(0, description="Calls that hit the per-request timeout.")
    prompt: str | None = Field(None, description="The exact text the model saw (chat template applied).")
    response: str | None = Field(None, description="The accepted (last) answer, new tokens only.")
    seed: int | None = Field(None, description="Sampling seed of the accepted call.")
    finish_reason: str | None = Field(None, description="'stop', 'length' or 'abort' from the engine.")
    tokens_in: int = Field(0, description="Prompt tokens of the accepted call.")
    tokens_out: int = Field(0, description="Generated tokens over all calls of this round.")
    latency_s: float = Field(0.0, description="Wall time of all calls of this round, seconds.")


class GameRecord(_Record):
    """One complete game: a line of `games.jsonl`."""

    type: Literal["game"] = "game"
    schema_version: int = SCHEMA_VERSION
    game_id: str = Field(description="Unique per (condition, repetition); the same on every rerun.")
    run_id: str = Field(description="Id of the run directory's manifest.")
    model: str = Field(description="Model label from the config.")
    condition: ConditionRecord
    repetition: int = Field(description="0-based repetition index within the condition.")
    seed: int = Field(description="Game seed, derived from (run seed, condition, repetition).")
    run_seed: int = Field(description="The run seed the game seed was derived from.")
    outcome: Outcome
    final_balance: int
    n_rounds: int = Field(description="Rounds with a bet placed, the forced round included.")
    total_bet: int
    total_won: int = Field(description="Sum of payouts (3 x bet on each win).")
    retries: int = Field(description="Sum of the rounds' retries.")
    invalid_reason: str | None = Field(None, description="Why an 'invalid' game ended.")
    rounds: list[RoundRecord]
    worker: int = 0
    gpu: str | None = None
    started: float = Field(description="Unix time the game started.")
    wall_s: float = Field(description="Seconds from start to end of the game.")


class _Event(_Record):
    schema_version: int = SCHEMA_VERSION
    time: float = Field(description="Unix time, seconds.")
    run_id: str
    worker: int = Field(0, description="Worker index (one per GPU or CPU worker).")
    gpu: str | None = Field(None, description="GPU id the worker runs on; null for CPU.")
    kind: PassKind = Field("games", description="Which pass wrote the event.")


class RunStartEvent(_Event):
    type: Literal["run_start"] = "run_start"
    model: str
    games_total: int = Field(description="Games (or units of work) of this worker, those already done included.")
    games_already_done: int = Field(0, description="Games found complete on resume.")
    resumed: bool = False
    pid: int | None = None


class GameDoneEvent(_Event):
    type: Literal["game_done"] = "game_done"
    game_id: str
    condition_id: str
    outcome: Outcome
    final_balance: int
    n_rounds: int
    retries: int


class ProgressEvent(_Event):
    type: Literal["progress"] = "progress"
    games_done: int = Field(description="Units done by this worker, resumed ones included.")
    games_total: int
    requests: int = Field(description="Model calls so far in this process.")
    requests_per_s: float = Field(description="Model calls per second over the last interval.")
    tokens_per_s: float = Field(description="Generated tokens per second over the last interval.")
    avg_requests_per_s: float = 0.0
    avg_tokens_per_s: float = 0.0
    retries: int = 0
    empty_retries: int = 0
    invalid: int = 0
    errors: int = 0
    in_flight: int = 0
    gpu_memory_used_mb: float | None = None
    gpu_memory_total_mb: float | None = None
    gpu_utilization: float | None = Field(None, description="Percent, from NVML when available.")


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    message: str
    game_id: str | None = None
    fatal: bool = False


class RunEndEvent(_Event):
    type: Literal["run_end"] = "run_end"
    games_done: int
    games_total: int
    wall_s: float
    status: Literal["complete", "incomplete", "failed", "interrupted"] = "complete"


Event = Annotated[
    RunStartEvent | GameDoneEvent | ProgressEvent | ErrorEvent | RunEndEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
GAME_ADAPTER: TypeAdapter[GameRecord] = TypeAdapter(GameRecord)


def json_schemas() -> dict[str, dict]:
    """JSON Schemas of the published line types, keyed by file name."""
    return {
        "game.schema.json": GameRecord.model_json_schema(),
        "event.schema.json": EVENT_ADAPTER.json_schema(),
    }


def is_voluntary_stop(game: GameRecord) -> bool:
    """A game the model itself chose to end: outcome `stopped` and its last decision read from the
    model's own words (not a fallback guess). The "stopped" group of every comparison."""
    if game.outcome != "stopped" or not game.rounds:
        return False
    return game.rounds[-1].parse_kind in MODEL_DECISION_KINDS
