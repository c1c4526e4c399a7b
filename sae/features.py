"""Feature extraction: which SAE features tell bankrupt games from voluntarily stopped ones.

The two groups, and the rules that drop every other game (counted in the meta file), are
`sae.games`'s. For every game of the two groups, the prompt of its last decision (the exact string
the model saw) goes through the model once; the last token's residual after every chosen block is
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
from harness.records import GameRecord
from harness.rundir.files import FEATURES_CSV, FEATURES_META, FEATURES_SUMMARY, FEATURES_TABLE
from sae.games import GROUPS, decision_rounds, split_groups
from sae.model import SAE
from sae.reader import ResidualReader
from sae.spec import model_warnings, reader_model_names
from sae.stats import CONSTANT_RTOL, RunningMoments, Thresholds, benjamini_hochberg, compare


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
        "table": out_dir / FEATURES_TABLE,
        "csv": out_dir / FEATURES_CSV,
        "summary": out_dir / FEATURES_SUMMARY,
        "meta": out_dir / FEATURES_META,
    }
    result.table.to_parquet(paths["table"], index=False)
    result.table.to_csv(paths["csv"], index=False)
    result.summary.to_csv(paths["summary"], index=False)
    paths["meta"].write_text(json.dumps(result.meta, indent=2))
    return paths
