"""Pathway tracking ("Exp1"): every decision of selected games, every chosen layer, stored sparse;
then how bankrupt-bound games differ from stopping games, layer by layer and round by round.

Extraction streams to `ShardWriter` (bounded memory). The comparison treats a *game* as the unit
(its decisions averaged per feature), so long games do not outweigh short ones:

- per layer: Cohen's d of every feature between bankrupt and stopped games; the top-K features by
  |d| with their direction; d of the number of active features; counts of |d| >= min_abs_d;
- per layer, step and group: decisions, mean number of active features, mean activation of the
  layer's top risky and top safe features. Steps are aligned two ways: `round` (the game's round
  number) and `to_end` (0 = the game's last decision, 1 = the one before, ...).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from harness.records import GameRecord
from harness.rundir.files import GAMES_FILE, PATHWAY_FIGURE, PATHWAY_SHARDS_DIR
from harness.seeds import derive_seed
from sae.games import GROUPS, decision_rounds, group_of, split_groups
from sae.model import SAE
from sae.pathway.shards import ShardStore, ShardWriter
from sae.reader import ResidualReader
from sae.releases import neuronpedia_ids
from sae.spec import model_warnings, reader_model_names
from sae.stats import compare_moments


def select_games(
    games: list[GameRecord], n: int | None = 50, ids: list[str] | None = None, seed: int = 0
) -> tuple[list[GameRecord], dict]:
    """(games, sample description for the meta file). `ids` if given (any outcome); `n` None: every
    game of both groups; else a seeded sample of n (half bankrupt where there are enough),
    stratified by condition (see `stratified_sample`). The result is sorted by game id, so neither
    the file order nor the order in which games finished matters."""
    if ids:
        by_id = {g.game_id: g for g in games}
        missing = [i for i in ids if i not in by_id]
        if missing:
            from harness.errors import ConfigError

            raise ConfigError(f"--game-ids: not in {GAMES_FILE}: {missing[:5]}")
        return [by_id[i] for i in ids], {"mode": "ids", "game_ids": list(ids)}
    kept, dropped = split_groups(games)
    pools = {grp: [g for g, in_grp in kept if in_grp == grp] for grp in GROUPS}
    sizes = {grp: len(pools[grp]) for grp in GROUPS}
    if n is not None:
        n_bank = min(sizes["bankrupt"], max(n // 2, n - sizes["stopped"]))
        sizes = {"bankrupt": n_bank, "stopped": min(sizes["stopped"], n - n_bank)}
    chosen = {
        grp: stratified_sample(pools[grp], sizes[grp], derive_seed(seed, "pathway", grp)) for grp in GROUPS
    }
    per_condition = {
        grp: {c: sum(g.condition.id == c for g in chosen[grp])
              for c in sorted({g.condition.id for g in chosen[grp]})}
        for grp in GROUPS
    }
    out = sorted(chosen["bankrupt"] + chosen["stopped"], key=lambda g: g.game_id)
    sample = {"mode": "all" if n is None else "sample", "seed": seed, "n": n, "per_condition": per_condition,
              "games_dropped": dropped, "game_ids": [g.game_id for g in out]}
    return out, sample


def stratified_sample(games: list[GameRecord], k: int, seed: int) -> list[GameRecord]:
    """k games drawn round-robin over conditions (in a seeded order), each condition's games in a
    seeded order: the counts per condition differ by at most one where a condition has enough."""
    rng = random.Random(seed)
    by_cond: dict[str, list[GameRecord]] = {}
    for g in sorted(games, key=lambda g: g.game_id):
        by_cond.setdefault(g.condition.id, []).append(g)
    queues = []
    for cond in sorted(by_cond):
        pool = by_cond[cond]
        rng.shuffle(pool)
        queues.append(pool)
    rng.shuffle(queues)
    picked: list[GameRecord] = []
    while len(picked) < k and any(queues):
        for q in queues:
            if q and len(picked) < k:
                picked.append(q.pop())
    return picked


def extract_pathway(
    games: list[GameRecord],
    saes: dict[int, SAE],
    reader: ResidualReader,
    out_dir: Path,
    rows_per_shard: int = 8192,
    progress: Callable[[int, int], None] | None = None,
    sample: dict | None = None,
) -> pd.DataFrame:
    """Write every decision's sparse activations at every layer; return the index. Each row carries
    the game's outcome and its group (bankrupt, stopped = voluntary stop, or other)."""
    start = time.perf_counter()
    warnings = model_warnings(saes, reader_model_names(reader))
    decisions = []
    for g in games:
        rounds = decision_rounds(g)
        group = group_of(g) or "other"
        for step, r in enumerate(rounds):
            row = {"game_id": g.game_id, "outcome": g.outcome, "group": group, "round": r.round, "step": step}
            decisions.append((row | {"to_end": len(rounds) - 1 - step}, r.prompt))
    layers = sorted(saes)
    writer = ShardWriter(out_dir, rows_per_shard)
    done = 0
    for idx, residuals in reader.last_token([p for _, p in decisions], layers):
        meta_rows = [decisions[i][0] for i in idx]
        for L in layers:
            writer.add([r | {"layer": L} for r in meta_rows], saes[L].encode(residuals[L]))
        done += len(idx)
        if progress:
            progress(done, len(decisions))
    meta = {
        "layers": layers,
        "d_sae": {str(L): saes[L].d_sae for L in layers},
        "games": len(games),
        "decisions": len(decisions),
        "wall_s": round(time.perf_counter() - start, 3),
        "saes": {str(L): saes[L].cfg.model_dump() for L in layers},
        "sample": sample,
        "warnings": warnings,
    }
    index = writer.close(meta)
    return index


@dataclass
class PathwayResult:
    layers: pd.DataFrame  # one row per layer
    top: pd.DataFrame  # top-K features per layer
    steps: pd.DataFrame  # per layer, alignment, step, group
    feature_rounds: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Per layer, top feature, round and group: its mean activation (the heatmap's cells)."""


def _group_moments(x, mask: np.ndarray):
    """n, mean, var (ddof=1) per column of the rows of sparse `x` selected by `mask`."""
    sub = x[np.flatnonzero(mask)]
    n = sub.shape[0]
    mean = np.asarray(sub.mean(axis=0)).ravel()
    sq = np.asarray(sub.multiply(sub).mean(axis=0)).ravel()
    var = np.maximum(sq - mean**2, 0.0) * n / max(n - 1, 1)
    return n, mean, var


def compare_pathway(store: ShardStore, top_k: int = 10, min_abs_d: float = 0.3) -> PathwayResult:
    """Bankrupt vs voluntarily stopped games per layer (see the module docstring)."""
    from scipy import sparse

    layer_rows, top_rows, step_rows, feature_rows = [], [], [], []
    for L in store.meta["layers"]:
        rows, x = store.layer(L)
        x = x.astype(np.float64)
        rows = rows[rows["group"].isin(GROUPS)].copy() if len(rows) else rows
        x = x[rows.index.to_numpy()]
        rows = rows.reset_index(drop=True)
        games, game_of_row = np.unique(rows["game_id"].to_numpy(), return_inverse=True)
        # averaging matrix: game g's row is the mean of its decisions
        per_game = np.bincount(game_of_row, minlength=len(games)).astype(np.float64)
        avg = sparse.csr_matrix((1.0 / per_game[game_of_row], (game_of_row, np.arange(len(rows)))))
        g = (avg @ x).tocsr()
        outcome = rows.groupby(game_of_row)["group"].first().to_numpy()
        bank, stop = outcome == "bankrupt", outcome == "stopped"
        if bank.sum() < 2 or stop.sum() < 2:
            raise ValueError(f"layer {L}: need at least 2 bankrupt and 2 stopped games")
        c = compare_moments(*_group_moments(g, bank), *_group_moments(g, stop))
        n_active = (
            np.bincount(game_of_row, weights=rows["n_active"].to_numpy(), minlength=len(games)) / per_game
        )
        d_active = compare_moments(
            int(bank.sum()), n_active[bank][None].mean(1), n_active[bank][None].var(1, ddof=1),
            int(stop.sum()), n_active[stop][None].mean(1), n_active[stop][None].var(1, ddof=1),
        ).d[0]
        order = np.argsort(-np.abs(c.d), kind="stable")[:top_k]
        order = order[c.tested[order]]
        risky, safe = order[c.d[order] > 0], order[c.d[order] < 0]
        layer_rows.append({
            "layer": L, "games_bankrupt": int(bank.sum()), "games_stopped": int(stop.sum()),
            "features_abs_d_ge": int((np.abs(c.d) >= min_abs_d).sum()),
            "max_abs_d": float(np.nanmax(np.abs(c.d), initial=0.0)),
            "top_mean_abs_d": float(np.abs(c.d[order]).mean()) if order.size else 0.0,
            "n_active_bankrupt": float(n_active[bank].mean()),
            "n_active_stopped": float(n_active[stop].mean()),
            "n_active_d": float(d_active),
        })
        for rank, f in enumerate(order):
            top_rows.append({
                "layer": L, "rank": rank, "feature": int(f), "d": float(c.d[f]), "p": float(c.p[f]),
                "direction": "risky" if c.d[f] > 0 else "safe",
                "mean_bankrupt": float(c.mean_a[f]), "mean_stopped": float(c.mean_b[f]),
            })
        if order.size:  # each top feature's mean activation per round and group: the heatmap's cells
            acts = pd.DataFrame(x[:, order].toarray(), columns=[int(f) for f in order])
            acts[["round", "group"]] = rows[["round", "group"]].to_numpy()
            cells = acts.groupby(["round", "group"]).mean().stack().rename("mean_activation").reset_index()
            feature_rows.append(cells.rename(columns={"level_2": "feature"}).assign(layer=L))
        risky_act = np.asarray(x[:, risky].mean(axis=1)).ravel() if risky.size else np.full(len(rows), np.nan)
        safe_act = np.asarray(x[:, safe].mean(axis=1)).ravel() if safe.size else np.full(len(rows), np.nan)
        frame = rows.assign(top_risky=risky_act, top_safe=safe_act)
        for align in ("round", "to_end"):
            agg = frame.groupby([align, "group"]).agg(
                decisions=("n_active", "size"), n_active_mean=("n_active", "mean"),
                top_risky_mean=("top_risky", "mean"), top_safe_mean=("top_safe", "mean"),
            ).reset_index()
            agg = agg.rename(columns={align: "step"})
            step_rows.append(agg.assign(layer=L, align=align))
    steps = pd.concat(step_rows, ignore_index=True)[
        ["layer", "align", "step", "group", "decisions", "n_active_mean", "top_risky_mean", "top_safe_mean"]
    ]
    columns = ["layer", "feature", "round", "group", "mean_activation"]
    rounds = (pd.concat(feature_rows, ignore_index=True)[columns] if feature_rows
              else pd.DataFrame(columns=columns))
    return PathwayResult(pd.DataFrame(layer_rows), pd.DataFrame(top_rows), steps, rounds)


def write_pathway(result: PathwayResult, out_dir: Path,
                  neuronpedia: dict[int, str | None] | None = None) -> dict[str, Path]:
    from sae.figures import pathway_heatmap
    from sae.releases import with_neuronpedia

    top = result.top if neuronpedia is None else with_neuronpedia(result.top, neuronpedia)
    paths = {}
    for name, frame in (("layers", result.layers), ("top_features", top), ("steps", result.steps),
                        ("feature_rounds", result.feature_rounds)):
        paths[name] = out_dir / f"pathway_{name}.csv"
        frame.to_csv(paths[name], index=False)
        frame.to_parquet(out_dir / f"pathway_{name}.parquet", index=False)
    if len(result.feature_rounds):
        paths["figure"] = pathway_heatmap(result.feature_rounds, result.top, out_dir / PATHWAY_FIGURE)
    return paths


@dataclass
class PathwayPass:
    """What `run_pathway` did: the shards' index and store, their size, and the comparison (None
    when a group has fewer than 2 games: nothing to compare)."""

    index: pd.DataFrame
    store: ShardStore
    shard_bytes: int
    result: PathwayResult | None


def run_pathway(
    games: list[GameRecord],
    saes: dict[int, SAE],
    reader: ResidualReader,
    out_dir: Path,
    *,
    rows_per_shard: int = 8192,
    top_k: int = 10,
    progress: Callable[[int, int], None] | None = None,
    sample: dict | None = None,
) -> PathwayPass:
    """The pathway pass: every decision of `games` into OUT/shards, then the comparison of the two
    groups (written to OUT) when each has at least 2 games."""
    shards = out_dir / PATHWAY_SHARDS_DIR
    index = extract_pathway(games, saes, reader, shards, rows_per_shard, progress, sample)
    store = ShardStore(shards)
    size = sum(f.stat().st_size for f in shards.glob("shard-*.safetensors"))
    per_group = index.groupby("group")["game_id"].nunique() if len(index) else {}
    result = None
    if all(per_group.get(g, 0) >= 2 for g in GROUPS):
        result = compare_pathway(store, top_k=top_k)
        write_pathway(result, out_dir, neuronpedia_ids(saes))
    return PathwayPass(index, store, size, result)
