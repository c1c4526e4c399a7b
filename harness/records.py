"""The records a run writes: one pydantic model per line type of `games.jsonl` and `events.jsonl`.

These files are the interface for stream consumers and the monitor, so every record carries
`schema_version` ("MAJOR.MINOR") and the JSON Schema is exported to `docs/schemas/`
(`harness schema`). Strict writers, tolerant readers: the models forbid unknown fields, so a
typo in the writing code fails at once; `read_game` / `read_event` (and `READ`, the keywords for
any adapter) ignore fields a newer version added and accept older versions and newer minor
versions, but refuse a newer major version with one clear line (`SchemaVersionError`).

Versions: a minor bump adds optional fields or values old readers may ignore; a major bump
changes what a field means or adds a value old readers would misread. 2.0 added the outcome
`no_decision` and the parse kind `extracted`; lines from before carry the integer 1.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from harness.errors import RunDirError
from harness.rundir.files import EVENTS_FILE, GAMES_FILE

SCHEMA_VERSION = "2.0"
_MAJOR = int(SCHEMA_VERSION.split(".")[0])
NEWER_MAJOR = "newer_major_version"


class SchemaVersionError(RunDirError):
    """A line written by a newer major version of the file format: reading on would misread it."""


def _version(value: Any) -> str:
    """'MAJOR.MINOR' from a line's schema_version (the integer 1 of older lines is '1.0')."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"{value}.0"
    parts = value.split(".") if isinstance(value, str) else []
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise PydanticCustomError("schema_version", "expected 'MAJOR.MINOR', got {value!r}", {"value": value})
    if int(parts[0]) > _MAJOR:
        raise PydanticCustomError(
            NEWER_MAJOR,
            "written by schema version {value}, newer than this harness reads ({current}): "
            "upgrade gamble-harness",
            {"value": value, "current": f"{_MAJOR}.x"},
        )
    return value


SchemaVersion = Annotated[
    str,
    BeforeValidator(_version),
    WithJsonSchema({
        "type": "string", "pattern": "^[0-9]+\\.[0-9]+$",
        "description": "File format version 'MAJOR.MINOR' (lines of format 1 carry the integer 1).",
    }),
]

BetType = Literal["fixed", "variable"]
FirstResult = Literal["W", "L"]
Outcome = Literal["bankrupt", "stopped", "max_rounds", "no_decision", "invalid"]
#: Every outcome in order; counts iterate over it, so a new outcome shows up everywhere by itself.
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
Action = Literal["bet", "stop"]
ParseKind = Literal[
    "final_decision", "first_line", "fallback", "extracted", "follow_up", "unparsed", "empty", "refused"
]
#: Parse kinds whose decision the model made, not the fallback reader or a policy (docs/protocol.md §1.6).
#: `extracted` is the model's continuation under the decision pattern: a voluntary stop here, yet
#: counted as guessed by the behavioural report (`harness.analysis.metrics.GUESSED_KINDS`).
#: `follow_up` is the model's free answer to one more turn asking for the decision line (endpoints
#: that cannot constrain): its own words, asked for again, never counted as guessed.
MODEL_DECISION_KINDS: tuple[ParseKind, ...] = ("final_decision", "first_line", "extracted", "follow_up")
#: The pass that wrote an event (an SAE pass by its one name); "patching" is the patch pass in older runs.
PassKind = Literal["games", "patch", "features", "pathway", "train", "words", "patching"]


def _type_required(schema: dict[str, Any]) -> None:
    """`type` has a default for writers, yet every line carries it: required in the schema."""
    if "type" in schema.get("properties", {}) and "type" not in schema.setdefault("required", []):
        schema["required"].insert(0, "type")


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_type_required)


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
    transport_retries: int = Field(
        0, description="Calls repeated because the transport failed (429, 5xx, timeout, reset, malformed "
        "body) on an endpoint; not answers of the model, so not in `retries`.",
    )
    prompt: str | None = Field(None, description="The exact text the model saw (chat template applied).")
    response: str | None = Field(None, description="The accepted (last) answer, new tokens only.")
    seed: int | None = Field(None, description="Sampling seed of the accepted call.")
    finish_reason: str | None = Field(
        None, description="'stop', 'length' or 'abort' from the engine; 'refused' for an endpoint's refusal."
    )
    tokens_in: int = Field(0, description="Prompt tokens of the accepted call.")
    tokens_out: int = Field(0, description="Generated tokens over all calls of this round.")
    latency_s: float = Field(0.0, description="Wall time of all calls of this round, seconds.")
    extract_prompt: str | None = Field(
        None,
        description="The decision step, when the answers had no readable decision: the prompt, the model's "
        "last answer (`response`) and a new 'Final Decision:' line (constrained); on an endpoint that "
        "cannot constrain, the follow-up turn's user message (parse kind 'follow_up').",
    )
    extract_response: str | None = Field(
        None, description="What the model wrote in the decision step ('Bet $N' or 'Stop'; free text for a "
        "follow-up turn)."
    )


class GameRecord(_Record):
    """One complete game: a line of `games.jsonl`."""

    type: Literal["game"] = Field("game", description=f"Line type: always 'game' in {GAMES_FILE}.")
    schema_version: SchemaVersion = SCHEMA_VERSION
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
    """Fields every line of `events.jsonl` carries."""

    schema_version: SchemaVersion = SCHEMA_VERSION
    time: float = Field(description="Unix time, seconds.")
    run_id: str = Field(description="Id of the run directory's manifest.")
    worker: int = Field(0, description="Worker index (one per GPU or CPU worker).")
    gpu: str | None = Field(None, description="GPU id the worker runs on; null for CPU.")
    kind: PassKind = Field("games", description="Which pass wrote the event.")
    host: str | None = Field(None, description="Host name of the machine the writer ran on.")
    node_id: str | None = Field(None, description="Ray node id of the writer; null off Ray.")


class RunStartEvent(_Event):
    """A worker (or an SAE pass) started."""

    type: Literal["run_start"] = Field("run_start", description="Line type.")
    model: str = Field(description="Model label from the config.")
    games_total: int = Field(
        description="Games (or units of work) of this worker, those already done included."
    )
    games_already_done: int = Field(0, description="Games found complete on resume.")
    resumed: bool = Field(False, description="True when games of this worker were already done.")
    pid: int | None = Field(None, description="Process id of the writer.")


class GameDoneEvent(_Event):
    """A game was written to games.jsonl (a summary of its record)."""

    type: Literal["game_done"] = Field("game_done", description="Line type.")
    game_id: str = Field(description=f"The game's id in {GAMES_FILE}.")
    condition_id: str = Field(description="Its condition, e.g. 'variable-L-GMP'.")
    outcome: Outcome = Field(description="How the game ended.")
    final_balance: int = Field(description="Balance at the end, dollars.")
    n_rounds: int = Field(description="Rounds with a bet placed, the forced round included.")
    retries: int = Field(description="Extra model calls over the whole game.")


class EndpointStats(_Record):
    """One OpenAI-compatible endpoint as a worker sees it (backend.kind = "openai")."""

    url: str = Field(description="The endpoint's base URL (never a key).")
    in_flight: int = Field(0, description="Requests sent and not yet answered.")
    requests: int = Field(0, description="Requests answered so far.")
    requests_per_s: float = Field(0.0, description="Requests answered per second over the last interval.")
    tokens_per_s: float = Field(0.0, description="Generated tokens per second over the last interval.")
    transport_retries: int = Field(0, description="Requests repeated after a transport fault.")
    rate_limited: int = Field(0, description="429 answers (Too Many Requests) so far.")
    failures: int = Field(0, description="Transport faults so far (429s included).")
    resting: bool = Field(False, description="True while the endpoint is rested after failing.")
    latency_p50_s: float | None = Field(None, description="Median request latency, seconds.")
    latency_p95_s: float | None = Field(None, description="95th-percentile request latency, seconds.")


class ProgressEvent(_Event):
    """Throughput and counters, every `progress_interval_s` seconds."""

    type: Literal["progress"] = Field("progress", description="Line type.")
    games_done: int = Field(description="Units done by this worker, resumed ones included.")
    games_total: int = Field(description="Units of this worker, those already done included.")
    requests: int = Field(description="Model calls so far in this process.")
    requests_per_s: float = Field(description="Model calls per second over the last interval.")
    tokens_per_s: float = Field(description="Generated tokens per second over the last interval.")
    avg_requests_per_s: float = Field(0.0, description="Model calls per second since the worker started.")
    avg_tokens_per_s: float = Field(0.0, description="Generated tokens per second since the worker started.")
    retries: int = Field(0, description="Extra model calls so far (empty, unparsed, timeouts).")
    empty_retries: int = Field(0, description="Calls re-asked because the answer was empty.")
    invalid: int = Field(0, description="Games that ended 'invalid' so far.")
    errors: int = Field(0, description="Games that raised an error (left for a resume).")
    in_flight: int = Field(0, description="Games being played right now.")
    transport_retries: int = Field(0, description="Requests repeated after a transport fault so far.")
    rate_limited: int = Field(0, description="429 answers (Too Many Requests) so far.")
    endpoints: list[EndpointStats] = Field(
        default_factory=list, description="Per-endpoint counters (backend.kind = 'openai'); empty otherwise.",
    )
    gpu_memory_used_mb: float | None = Field(None, description="GPU memory in use, MiB; null on CPU.")
    gpu_memory_total_mb: float | None = Field(None, description="GPU memory in all, MiB, when known.")
    gpu_utilization: float | None = Field(None, description="Percent, from NVML when available.")


class ErrorEvent(_Event):
    """A game failed (it replays on resume), or, with `fatal`, the worker or its engine died."""

    type: Literal["error"] = Field("error", description="Line type.")
    message: str = Field(description="One line saying what failed (a traceback tail for game errors).")
    game_id: str | None = Field(None, description="The game that failed; null for a worker-wide error.")
    fatal: bool = Field(False, description="True when the worker (or its engine) died: its run ends.")


class RunEndEvent(_Event):
    """A worker (or an SAE pass) ended, however it ended."""

    type: Literal["run_end"] = Field("run_end", description="Line type.")
    games_done: int = Field(description="Units done by this worker, resumed ones included.")
    games_total: int = Field(description="Units of this worker, those already done included.")
    wall_s: float = Field(description="Seconds this worker ran.")
    status: Literal["complete", "incomplete", "failed", "interrupted"] = Field(
        "complete",
        description="'complete': all done; 'incomplete': some games errored (rerun resumes); 'failed': "
        "the worker or engine died; 'interrupted': Ctrl-C or SIGTERM (games in flight replay on resume).",
    )


EVENT_TYPES: tuple[type[_Event], ...] = (RunStartEvent, GameDoneEvent, ProgressEvent, ErrorEvent, RunEndEvent)
Event = Annotated[
    RunStartEvent | GameDoneEvent | ProgressEvent | ErrorEvent | RunEndEvent,
    Field(discriminator="type"),
]
EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)
GAME_ADAPTER: TypeAdapter[GameRecord] = TypeAdapter(GameRecord)

#: Validation keywords of a tolerant reader: unknown fields (from a newer version) are ignored.
READ: dict[str, Any] = {"extra": "ignore"}


def _read(adapter: TypeAdapter, line: bytes | str):
    try:
        return adapter.validate_json(line, **READ)
    except ValidationError as e:
        for err in e.errors():
            if err["type"] == NEWER_MAJOR:
                raise SchemaVersionError(err["msg"]) from None
        raise


def read_game(line: bytes | str) -> GameRecord:
    """A game line as a tolerant reader. ValidationError for a bad line; SchemaVersionError for a
    line of a newer major version (the caller adds the file name)."""
    return _read(GAME_ADAPTER, line)


def read_event(line: bytes | str) -> Event:
    """An event line as a tolerant reader (see `read_game`)."""
    return _read(EVENT_ADAPTER, line)


def event_json_schema() -> dict[str, Any]:
    """One schema per event type under $defs, chosen by `if type == ... then`, so a plain Draft
    2020-12 validator reports the failing field's path (a oneOf would report every branch)."""
    from pydantic.json_schema import models_json_schema

    _, top = models_json_schema([(m, "validation") for m in EVENT_TYPES], ref_template="#/$defs/{model}")
    names = [m.model_fields["type"].default for m in EVENT_TYPES]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Event",
        "description": f"One line of {EVENTS_FILE}; `type` says which event it is.",
        "type": "object",
        "required": ["type"],
        "properties": {"type": {"enum": names}},
        "allOf": [
            {"if": {"properties": {"type": {"const": name}}, "required": ["type"]},
             "then": {"$ref": f"#/$defs/{model.__name__}"}}
            for name, model in zip(names, EVENT_TYPES, strict=True)
        ],
        "$defs": top["$defs"],
    }


def json_schemas() -> dict[str, dict]:
    """JSON Schemas (Draft 2020-12) of the published line types, keyed by file name."""
    game = {"$schema": "https://json-schema.org/draft/2020-12/schema", **GameRecord.model_json_schema()}
    return {"game.schema.json": game, "event.schema.json": event_json_schema()}


def is_voluntary_stop(game: GameRecord) -> bool:
    """A game the model itself chose to end: outcome `stopped` and its last decision read from the
    model's own words (not a fallback guess). The "stopped" group of every comparison."""
    if game.outcome != "stopped" or not game.rounds:
        return False
    return game.rounds[-1].parse_kind in MODEL_DECISION_KINDS
