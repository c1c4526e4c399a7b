"""Read a run directory's `games.jsonl` into two flat tables: one row per game, one per round.

Fast path: pyarrow's multi-threaded JSON reader with an explicit schema (the fields of
`harness.records.GameRecord` the analysis needs; prompts and answers are skipped while parsing),
so 100,000 games load in about a second. The games are those the one reader of a run gives
(`harness.rundir.reader`, the policy every consumer shares): a torn last line is skipped and
counted, a game written twice keeps its first copy. If arrow rejects the file (a corrupt line, a
dead worker's fragment, a wrong type or value), or a line says it was written by a newer major
schema version, the file goes through that reader line by line, which names each bad line,
recovers a game glued to a fragment and refuses a newer major version with one line. Then the
games whose balances, rounds and outcome do not add up are flagged (`harness.analysis.consistency`).
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from harness.analysis.consistency import flag_inconsistent, run_rules
from harness.errors import HarnessError
from harness.records import SCHEMA_VERSION, Action, BetType, Outcome, ParseKind
from harness.rundir.files import GAMES_FILE, MANIFEST_FILE
from harness.rundir.reader import GamesRead, read_game_lines

_COND = pa.struct(
    [
        ("id", pa.string()),
        ("bet_type", pa.string()),
        ("first_result", pa.string()),
        ("components", pa.string()),
    ]
)
_ROUND = pa.struct(
    [
        ("round", pa.int64()),
        ("forced", pa.bool_()),
        ("balance_before", pa.int64()),
        ("decision", pa.string()),
        ("bet", pa.int64()),
        ("requested_bet", pa.int64()),
        ("win", pa.bool_()),
        ("parse_kind", pa.string()),
        ("balance_after", pa.int64()),
        ("retries", pa.int64()),
        ("transport_retries", pa.int64()),
        ("finish_reason", pa.string()),
        ("tokens_in", pa.int64()),
        ("tokens_out", pa.int64()),
        ("latency_s", pa.float64()),
    ]
)
_GAME = pa.schema(
    [
        ("type", pa.string()),
        ("game_id", pa.string()),
        ("run_id", pa.string()),
        ("seed", pa.int64()),
        ("run_seed", pa.int64()),
        ("total_won", pa.int64()),
        ("started", pa.float64()),
        ("wall_s", pa.float64()),
        ("model", pa.string()),
        ("condition", _COND),
        ("repetition", pa.int64()),
        ("outcome", pa.string()),
        ("final_balance", pa.int64()),
        ("n_rounds", pa.int64()),
        ("total_bet", pa.int64()),
        ("retries", pa.int64()),
        ("rounds", pa.list_(_ROUND)),
    ]
)
_ROUND_FIELDS = [f.name for f in _ROUND]


class AnalysisInputError(HarnessError):
    """A run directory has no readable games."""

    exit_code = 2


@dataclass
class RunData:
    """One run, flattened. `games` is indexed 0..n-1 (`rounds.game` points into it)."""

    path: Path
    label: str
    model: str
    games: pd.DataFrame
    rounds: pd.DataFrame
    expected_games: int | None = None
    decision_mode: str = "unknown"
    torn_lines: int = 0
    bad_lines: list[str] = field(default_factory=list)
    duplicates: int = 0
    recovered_lines: int = 0
    inconsistent: list[str] = field(default_factory=list)
    """`GAME_ID: what is wrong` for each game that does not add up under the rules (left out)."""

    @property
    def completeness(self) -> float | None:
        if not self.expected_games:
            return None
        return len(self.games) / self.expected_games


def _arrow_table(data: bytes) -> pa.Table:
    block = max(1 << 20, min(len(data), 1 << 30) + 1)  # a block must hold the longest line
    opts = pajson.ParseOptions(explicit_schema=_GAME, unexpected_field_behavior="ignore")
    return pajson.read_json(
        io.BytesIO(data), read_options=pajson.ReadOptions(block_size=block), parse_options=opts
    )


#: A line's `schema_version` major (`"2.0"`, or the integer 1 of older lines). Text inside a string
#: cannot match: its quotes are escaped (`\"schema_version\":`). No lookbehind: it would turn off
#: the regex engine's literal scan (8.7 s instead of 0.34 s over 353 MB of games).
_VERSION_MAJOR = re.compile(rb'"schema_version":\s*"?(\d+)')
_MAJOR = int(SCHEMA_VERSION.split(".")[0])


def _newer_major(data: bytes) -> bool:
    """Some line was written by a newer major version (the fast path does not read the field)."""
    return any(int(m) > _MAJOR for m in set(_VERSION_MAJOR.findall(data)))


def _values_ok(table: pa.Table) -> bool:
    """Arrow checks types, not the allowed values or required fields: check those, vectorised."""
    cond = table.column("condition").combine_chunks()
    rounds = pc.list_flatten(table.column("rounds").combine_chunks())
    checks = [
        (table.column("type"), ("game",), False),
        (table.column("outcome"), get_args(Outcome), False),
        (cond.field("bet_type"), get_args(BetType), False),
        (rounds.field("decision"), get_args(Action), True),
        (rounds.field("parse_kind"), get_args(ParseKind), True),
    ]
    for column, allowed, nullable in checks:
        ok = pc.is_in(column, value_set=pa.array(allowed))
        ok = pc.or_kleene(ok, column.is_null()) if nullable else ok
        if not pc.all(ok.fill_null(False)).as_py():
            return False
    # every field the record requires and cannot be null (a nullable one, missing, reads as null here
    # and is refused by the record reader: lines no harness writes)
    required = [table.column(c) for c in (
        "game_id", "run_id", "model", "condition", "repetition", "seed", "run_seed", "final_balance",
        "n_rounds", "total_bet", "total_won", "retries", "rounds", "started", "wall_s",
    )]
    required += [cond.field("id"), cond.field("components")]
    required += [rounds.field("round"), rounds.field("balance_before"), rounds.field("balance_after")]
    return all(c.null_count == 0 for c in required)


def _table_slow(path: Path) -> tuple[pa.Table, GamesRead]:
    """Line by line through the run reader (`harness.rundir.reader`): slower, but names every
    unreadable line, recovers a game glued to a dead worker's fragment and keeps the rest."""
    read = read_game_lines(path)
    if not read.lines:
        return _GAME.empty_table(), read
    try:
        return _arrow_table(b"\n".join(line.data.rstrip(b"\n") for line in read.lines) + b"\n"), read
    except pa.ArrowInvalid:  # a number beyond 64 bits: that line alone is left out
        tables = []
        for line in read.lines:
            try:
                tables.append(_arrow_table(line.data))
            except pa.ArrowInvalid as e:
                read.unreadable.append(f"line {line.line_no}: {e}")
        return (pa.concat_tables(tables) if tables else _GAME.empty_table()), read


def _first_copies(table: pa.Table) -> tuple[pa.Table, int]:
    """A game written twice keeps its first copy, as every reader of a run does."""
    ids = table.column("game_id").to_numpy(zero_copy_only=False)
    _, first = np.unique(ids, return_index=True)
    keep = np.sort(first)
    if len(keep) == len(ids):
        return table, 0
    return table.take(pa.array(keep)), len(ids) - len(keep)


def read_games(path: Path) -> tuple[pa.Table, GamesRead]:
    """Parse a games.jsonl into an arrow table of the same games the run reader gives, and what
    was skipped, recovered or dropped. The fast path reads the whole file with arrow; any line it
    cannot vouch for (a fragment, a bad value, a newer major version) sends the file through the
    reader line by line."""
    data = path.read_bytes()
    cut = data.rfind(b"\n") + 1
    torn = cut < len(data)  # a last line without its newline: a game being written
    data = data[:cut]
    try:
        table = _arrow_table(data) if data.strip() else _GAME.empty_table()
        table.validate(full=True)  # the JSON reader does not check that strings are UTF-8
        if not _newer_major(data) and _values_ok(table):
            table, duplicates = _first_copies(table)
            return table, GamesRead(torn_tail=torn, duplicates=duplicates)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        pass
    return _table_slow(path)


def _cat(column: pa.Array | pa.ChunkedArray) -> pd.Categorical:
    """Few distinct strings: categorical, so comparisons and groupings work on integer codes."""
    return pc.dictionary_encode(column).to_pandas().astype("category").array


def flatten(table: pa.Table) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Arrow games table -> (games frame, rounds frame) with plain numpy columns."""
    cond = table.column("condition").combine_chunks()
    games = pd.DataFrame(
        {
            "game_id": table.column("game_id").to_numpy(zero_copy_only=False),
            "model": _cat(table.column("model")),
            "condition": _cat(cond.field("id")),
            "bet_type": _cat(cond.field("bet_type")),
            "first_result": _cat(cond.field("first_result").fill_null("none")),
            "components": _cat(cond.field("components")),
            "repetition": table.column("repetition").to_numpy(),
            "outcome": _cat(table.column("outcome")),
            "final_balance": table.column("final_balance").to_numpy(),
            "n_rounds": table.column("n_rounds").to_numpy(),
            "total_bet": table.column("total_bet").to_numpy(),
            "retries": table.column("retries").fill_null(0).to_numpy(),
        }
    )
    rounds_list = table.column("rounds").combine_chunks()
    flat = pc.list_flatten(rounds_list)
    parent = pc.list_parent_indices(rounds_list).to_numpy()
    cols = {name: flat.field(name) for name in _ROUND_FIELDS}
    rounds = pd.DataFrame(
        {
            "game": parent.astype(np.int64),
            "round": cols["round"].to_numpy(),
            "forced": cols["forced"].fill_null(False).to_numpy(zero_copy_only=False),
            "balance_before": cols["balance_before"].to_numpy(),
            "decision": _cat(cols["decision"].fill_null("none")),
            # -1 marks "no bet": keeps the column integer and fast.
            "bet": cols["bet"].fill_null(-1).to_numpy(),
            # the amount the model wrote before clamping; -1 when not recorded
            "requested_bet": cols["requested_bet"].fill_null(-1).to_numpy(),
            # 1 win, 0 loss, -1 no bet
            "win": pc.if_else(cols["win"].is_null(), -1, pc.cast(cols["win"], pa.int8())).to_numpy(),
            "parse_kind": _cat(cols["parse_kind"].fill_null("forced")),
            "balance_after": cols["balance_after"].to_numpy(),
            # what each round cost (absent in older runs: 0)
            "retries": cols["retries"].fill_null(0).to_numpy(),
            "transport_retries": cols["transport_retries"].fill_null(0).to_numpy(),
            "finish_reason": _cat(cols["finish_reason"].fill_null("none")),
            "tokens_in": cols["tokens_in"].fill_null(0).to_numpy(),
            "tokens_out": cols["tokens_out"].fill_null(0).to_numpy(),
            "latency_s": cols["latency_s"].fill_null(0.0).to_numpy(),
        }
    )
    return games, rounds


def _expected_games(manifest: dict) -> int | None:
    """Games the run will hold when complete: manifest['games_total'], else from its config."""
    for key in ("games_total", "expected_games"):
        if isinstance(manifest.get(key), int):
            return manifest[key]
    config = manifest.get("config")
    if isinstance(config, dict):
        try:
            from harness.config import RunConfig

            cfg = RunConfig.model_validate(config)
            return len(cfg.conditions.resolve()) * cfg.repetitions
        except Exception:  # an older or partial manifest: completeness is then unknown
            return None
    return None


def _decision_mode(manifest: dict) -> str:
    """'free' or 'constrained' from the manifest's config; runs older than the setting were free."""
    config = manifest.get("config")
    if not isinstance(config, dict):
        return "unknown"
    return str((config.get("game") or {}).get("decision", "free"))


def load_run(run_dir: str | Path) -> RunData:
    """Load a run directory (or a games.jsonl path)."""
    path = Path(run_dir)
    games_path = path if path.is_file() else path / GAMES_FILE
    if not games_path.exists():
        raise AnalysisInputError(f"{games_path}: no {GAMES_FILE} here (is {path} a run directory?)")
    if not games_path.is_file():
        raise AnalysisInputError(f"{games_path}: not a file")
    table, read = read_games(games_path)
    games, rounds = flatten(table)
    manifest: dict = {}
    manifest_path = games_path.parent / MANIFEST_FILE
    if manifest_path.is_file():
        try:
            manifest = json.loads(manifest_path.read_bytes())
        except ValueError:  # not JSON, or not UTF-8
            manifest = {}
    manifest = manifest if isinstance(manifest, dict) else {}
    inconsistent = flag_inconsistent(games, rounds, run_rules(manifest))
    model = (
        str(games["model"].iloc[0]) if len(games) else str(manifest.get("model") or games_path.parent.name)
    )
    return RunData(
        path=games_path.parent,
        label=model,
        model=model,
        games=games,
        rounds=rounds,
        expected_games=_expected_games(manifest),
        decision_mode=_decision_mode(manifest),
        torn_lines=int(read.torn_tail),
        bad_lines=read.unreadable,
        duplicates=read.duplicates,
        recovered_lines=read.recovered,
        inconsistent=inconsistent,
    )


def unique_labels(runs: list[RunData]) -> None:
    """Runs are shown by model name; two runs of one model get their directory name appended."""
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.model] = seen.get(r.model, 0) + 1
    for r in runs:
        r.label = r.model if seen[r.model] == 1 else f"{r.model} ({r.path.name})"
