"""Feature extraction: which SAE features tell bankrupt games from voluntarily stopped ones.

Groups (docs/protocol.md §3): bankrupt games vs voluntarily stopped games (`is_voluntary_stop`:
outcome `stopped` with the last decision read from the model's own words). Every other game is
dropped and counted by rule in the meta file: `max_rounds`, `no_decision`, `invalid`,
`stopped_by_fallback` (a stop the parser guessed), `no_prompt` (no saved decision prompt).

For every game of the two groups, the prompt of its last decision (the exact string the
model saw) goes through the model once; the last token's residual after every chosen block is
encoded by that layer's SAE. Each group keeps running moments only, so memory does not grow with
the number of games. Per feature: Welch's t, Cohen's d (pooled SD, positive = higher in bankrupt
games, "risky"), and Benjamini-Hochberg q-values over all tested features of all layers together.
Features that are constant in both groups (up to `sae.stats.CONSTANT_RTOL`) cannot be tested and
are only counted; a feature whose moments are NaN or infinite stays in the table with NaN p and q,
outside the BH family, and is counted (`p_nan`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from harness.errors import RunDirError
from harness.records import GameRecord, is_voluntary_stop, read_game
from sae.model import SAE
from sae.reader import ResidualReader
from sae.spec import model_warnings, reader_model_names
from sae.stats import CONSTANT_RTOL, RunningMoments, Thresholds, benjamini_hochberg, compare

GROUPS = ("bankrupt", "stopped")
#: Why a game is in neither group, in the order the rules are tried.
DROP_RULES = ("max_rounds", "no_decision", "invalid", "stopped_by_fallback", "no_prompt")


def group_of(game: GameRecord) -> str | None:
    """'bankrupt', 'stopped' (a voluntary stop only) or None."""
    if game.outcome == "bankrupt":
        return "bankrupt"
    return "stopped" if is_voluntary_stop(game) else None


def drop_reason(game: GameRecord) -> str | None:
    """The DROP_RULES entry that keeps `game` out of both groups, or None when it is in one."""
    if group_of(game) is None:
        return "stopped_by_fallback" if game.outcome == "stopped" else game.outcome
    return None if decision_rounds(game) else "no_prompt"


def split_groups(games: list[GameRecord]) -> tuple[list[tuple[GameRecord, str]], dict[str, int]]:
    """([(game, group)] of the games in a group with a saved prompt, {rule: games it dropped})."""
    dropped = dict.fromkeys(DROP_RULES, 0)
    kept = []
    for g in games:
        reason, group = drop_reason(g), group_of(g)
        if reason is None:
            assert group is not None  # no drop reason: the game is in a group
            kept.append((g, group))
        else:
            dropped[reason] += 1
    return kept, dropped


def read_games(run_dir: Path) -> list[GameRecord]:
    """All games of a run directory (RunDirError naming the line if one is unreadable)."""
    file = run_dir / "games.jsonl"
    if not file.is_file():
        raise RunDirError(f"{file}: not found (is {run_dir} a run directory?)")
    games = []
    with open(file) as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                games.append(read_game(line))  # tolerant reader
            except ValueError as e:
                raise RunDirError(f"{file}:{n}: not a game record: {str(e).splitlines()[0]}") from None
    return games


def decision_rounds(game: GameRecord):
    """The rounds where the model decided (not forced) and whose prompt was saved, in order."""
    return [r for r in game.rounds if not r.forced and r.prompt is not None]


def last_decision_prompt(game: GameRecord) -> str | None:
    rounds = decision_rounds(game)
    return rounds[-1].prompt if rounds else None


@dataclass
class FeatureResult:
    table: pd.DataFrame
    summary: pd.DataFrame
    meta: dict = field(default_factory=dict)


class _LayerStats:
    def __init__(self, d_sae: int):
        self.moments = {g: RunningMoments(d_sae) for g in GROUPS}
        self.active = {g: np.zeros(d_sae, dtype=np.int64) for g in GROUPS}


def extract_features(
    games: list[GameRecord],
    saes: dict[int, SAE],
    reader: ResidualReader,
    thresholds: Thresholds | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> FeatureResult:
    """Compare bankrupt vs voluntarily stopped games feature by feature at every layer in `saes`."""
    thresholds = thresholds or Thresholds()
    start = time.perf_counter()
    kept, dropped = split_groups(games)
    # split_groups keeps only games with a saved decision prompt
    chosen = [(g, cast(str, last_decision_prompt(g))) for g, _ in kept]
    groups = np.array([grp for _, grp in kept])
    counts = {grp: int((groups == grp).sum()) for grp in GROUPS}
    if min(counts.values()) < 2:
        raise RunDirError(
            f"need at least 2 bankrupt and 2 voluntarily stopped games with a saved prompt; found "
            f"{counts['bankrupt']} bankrupt and {counts['stopped']} stopped (dropped: {dropped})"
        )
    warnings = model_warnings(saes, reader_model_names(reader))
    layers = sorted(saes)
    stats = {L: _LayerStats(saes[L].d_sae) for L in layers}
    done = 0
    for idx, residuals in reader.last_token([p for _, p in chosen], layers):
        batch_groups = groups[idx]
        for L in layers:
            acts = saes[L].encode(residuals[L]).float().cpu()
            for grp in GROUPS:
                rows = acts[np.flatnonzero(batch_groups == grp)]
                stats[L].moments[grp].update(rows)
                stats[L].active[grp] += (rows > 0).sum(0).numpy()
        done += len(idx)
        if progress:
            progress(done, len(chosen))
    table = _table(stats, counts, thresholds)
    summary = _summary(table, {L: saes[L].d_sae for L in layers}, thresholds)
    wall = time.perf_counter() - start
    meta = {
        "layers": layers,
        "games_total": len(games),
        "games_used": len(chosen),
        "games_dropped": dropped,
        "n_bankrupt": counts["bankrupt"],
        "n_stopped": counts["stopped"],
        "thresholds": thresholds.__dict__,
        "constant_rtol": CONSTANT_RTOL,
        "p_nan": int(table["p"].isna().sum()),
        "wall_s": round(wall, 3),
        "prompts_per_s": round(len(chosen) / wall, 3) if wall > 0 else None,
        "saes": {str(L): saes[L].cfg.model_dump() for L in layers},
        "warnings": warnings,
    }
    return FeatureResult(table, summary, meta)


def _table(stats: dict[int, _LayerStats], counts: dict[str, int], thresholds: Thresholds) -> pd.DataFrame:
    parts = []
    for L, s in stats.items():
        c = compare(s.moments["bankrupt"], s.moments["stopped"])
        keep = np.flatnonzero(c.tested | np.isnan(c.p))
        parts.append(
            pd.DataFrame(
                {
                    "layer": np.full(keep.size, L, dtype=np.int32),
                    "feature": keep.astype(np.int32),
                    "mean_bankrupt": c.mean_a[keep],
                    "mean_stopped": c.mean_b[keep],
                    "active_bankrupt": s.active["bankrupt"][keep] / counts["bankrupt"],
                    "active_stopped": s.active["stopped"][keep] / counts["stopped"],
                    "d": c.d[keep],
                    "t": c.t[keep],
                    "p": c.p[keep],
                }
            )
        )
    table = pd.concat(parts, ignore_index=True)
    table["q"] = benjamini_hochberg(table["p"].to_numpy())  # all layers together
    table["direction"] = np.select([table["d"] > 0, table["d"] < 0], ["risky", "safe"], "none")
    table["significant"] = thresholds.significant(
        table["d"].to_numpy(), table["p"].to_numpy(), table["q"].to_numpy()
    )
    return table


def _summary(table: pd.DataFrame, d_sae: dict[int, int], thresholds: Thresholds) -> pd.DataFrame:
    rows = []
    for L, n in d_sae.items():
        t = table[table["layer"] == L]
        sig = t[t["significant"]]
        p_nan = int(t["p"].isna().sum())
        rows.append(
            {
                "layer": L,
                "features": n,
                "tested": len(t) - p_nan,
                "constant": n - len(t),
                "p_nan": p_nan,
                "significant": len(sig),
                "risky": int((sig["direction"] == "risky").sum()),
                "safe": int((sig["direction"] == "safe").sum()),
                "max_abs_d": float(t["d"].abs().max()) if len(t) else 0.0,
            }
        )
    return pd.DataFrame(rows)


def write_result(result: FeatureResult, out_dir: Path) -> dict[str, Path]:
    """features.parquet / .csv (every tested feature), features_summary.csv, features_meta.json."""
    import json

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "table": out_dir / "features.parquet",
        "csv": out_dir / "features.csv",
        "summary": out_dir / "features_summary.csv",
        "meta": out_dir / "features_meta.json",
    }
    result.table.to_parquet(paths["table"], index=False)
    result.table.to_csv(paths["csv"], index=False)
    result.summary.to_csv(paths["summary"], index=False)
    paths["meta"].write_text(json.dumps(result.meta, indent=2))
    return paths
