"""Read a run directory's `games.jsonl` into two flat tables: one row per game, one per round.

Fast path: pyarrow's multi-threaded JSON reader with an explicit schema (the fields of
`harness.records.GameRecord` the analysis needs; prompts and answers are skipped while parsing),
so 100,000 games load in about a second. A run still being written may end in a torn line;
it is cut off before parsing and counted. If arrow rejects the file (a corrupt line in the
middle, a wrong type), or a line says it was written by a newer major schema version, every line
goes through pydantic's `GAME_ADAPTER`, which names the bad line; unreadable lines are skipped and
counted, never silently, and a newer major version is refused with one line naming the file.
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
from pydantic import ValidationError

from harness.errors import HarnessError
from harness.records import SCHEMA_VERSION, Action, BetType, Outcome, ParseKind, SchemaVersionError, read_game

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
    ]
)
_GAME = pa.schema(
    [
        ("game_id", pa.string()),
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
    required = [table.column(c) for c in ("game_id", "final_balance", "n_rounds", "total_bet")]
    required += [rounds.field("round"), rounds.field("balance_before")]
    return all(c.null_count == 0 for c in required)


def _table_slow(data: bytes, bad: list[str]) -> pa.Table:
    """Line by line through pydantic: slower, but names every unreadable line and keeps the rest."""
    good = []
    for no, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            read_game(line)  # tolerant: unknown fields ignored, a newer major version refused
            good.append(line)
        except ValidationError as e:
            err = e.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            bad.append(f"line {no}: {where}: {err['msg']}")
    if not good:
        return _GAME.empty_table()
    return _arrow_table(b"\n".join(good) + b"\n")


def read_games(path: Path) -> tuple[pa.Table, int, list[str]]:
    """Parse a games.jsonl. Returns (table, torn trailing lines, bad lines)."""
    data = path.read_bytes()
    torn = 0
    if data and not data.endswith(b"\n"):
        cut = data.rfind(b"\n") + 1
        tail = data[cut:]
        try:
            json.loads(tail)  # a complete last record without its newline is kept
            data += b"\n"
        except ValueError:
            data, torn = data[:cut], 1
    bad: list[str] = []
    if not data.strip():
        return _GAME.empty_table(), torn, bad
    try:
        try:
            table = _arrow_table(data)
            if _newer_major(data) or not _values_ok(table):
                table = _table_slow(data, bad)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            table = _table_slow(data, bad)
    except SchemaVersionError as e:
        raise SchemaVersionError(f"{path}: {e}") from None
    return table, torn, bad


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


def _dedupe(table: pa.Table) -> tuple[pa.Table, int]:
    """A resumed run may hold a game twice; keep the last copy."""
    ids = table.column("game_id").to_numpy(zero_copy_only=False)
    _, first_rev = np.unique(ids[::-1], return_index=True)
    keep = np.sort(len(ids) - 1 - first_rev)
    if len(keep) == len(ids):
        return table, 0
    return table.take(pa.array(keep)), len(ids) - len(keep)


def load_run(run_dir: str | Path) -> RunData:
    """Load a run directory (or a games.jsonl path)."""
    path = Path(run_dir)
    games_path = path if path.is_file() else path / "games.jsonl"
    if not games_path.exists():
        raise AnalysisInputError(f"{games_path}: no games.jsonl here (is {path} a run directory?)")
    table, torn, bad = read_games(games_path)
    table, dup = _dedupe(table)
    games, rounds = flatten(table)
    manifest: dict = {}
    manifest_path = games_path.parent / "manifest.json"
    if manifest_path.exists():
        try:
            manifest = json.loads(manifest_path.read_text())
        except ValueError:
            manifest = {}
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
        torn_lines=torn,
        bad_lines=bad,
        duplicates=dup,
    )


def unique_labels(runs: list[RunData]) -> None:
    """Runs are shown by model name; two runs of one model get their directory name appended."""
    seen: dict[str, int] = {}
    for r in runs:
        seen[r.model] = seen.get(r.model, 0) + 1
    for r in runs:
        r.label = r.model if seen[r.model] == 1 else f"{r.model} ({r.path.name})"
