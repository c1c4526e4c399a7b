"""Effects and associations: with vs without each prompt component, fixed vs variable, first
result W vs L, the number of components, the index-bankruptcy correlation across conditions,
and win/loss-streak chasing. Differences carry bootstrap intervals and a test
(Fisher exact for the bankruptcy rate, Welch t for means); component-effect p-values also get
Benjamini-Hochberg q-values within each run and scope."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from harness.analysis.metrics import MAX_STREAK
from harness.analysis.stats import (
    Boot,
    fisher_p,
    interval,
    mean_draws,
    pearson,
    rate_draws,
    use_exact,
    welch_p,
)
from harness.analysis.tables import RATE, PreparedRun, scopes
from harness.game.conditions import COMPONENT_KEYS

#: Metrics compared between two groups of games.
COMPARED = [RATE, "index", "n_rounds", "total_bet", "final_balance"]


def compare(a: pd.DataFrame, b: pd.DataFrame, boot: Boot, rng: np.random.Generator) -> list[dict]:
    """One row per compared metric: group means, difference a - b with its interval, test p."""
    a, b = a[a["included"]], b[b["included"]]
    exact = use_exact(max(len(a), len(b)), len(a) + len(b))
    rows = []
    ka, kb = int(a["bankrupt"].sum()), int(b["bankrupt"].sum())
    da = rate_draws(np.array([ka]), np.array([len(a)]), boot, rng)[:, 0]
    db = rate_draws(np.array([kb]), np.array([len(b)]), boot, rng)[:, 0]
    draws = {RATE: (da, db)}
    means = COMPARED[1:]
    ma = mean_draws(a[means].to_numpy(dtype=float), boot, rng, exact)
    mb = mean_draws(b[means].to_numpy(dtype=float), boot, rng, exact)
    for j, m in enumerate(means):
        draws[m] = (ma[:, j], mb[:, j])
    for m in COMPARED:
        col = "bankrupt" if m == RATE else m
        va, vb = a[col].to_numpy(dtype=float), b[col].to_numpy(dtype=float)
        xa = va.mean() if len(va) else np.nan
        xb = vb.mean() if len(vb) else np.nan
        (a_lo, b_lo), (a_hi, b_hi) = interval(np.column_stack(draws[m]))
        d_lo, d_hi = interval((draws[m][0] - draws[m][1])[:, None])
        if m == RATE:
            p, test = fisher_p(ka, len(a), kb, len(b)), "Fisher exact"
        else:
            p, test = welch_p(va, vb), "Welch t"
        rows.append(
            dict(
                metric=m,
                n_a=len(a),
                a=xa,
                a_lo=a_lo,
                a_hi=a_hi,
                n_b=len(b),
                b=xb,
                b_lo=b_lo,
                b_hi=b_hi,
                diff=xa - xb,
                diff_lo=d_lo[0],
                diff_hi=d_hi[0],
                p=p,
                test=test,
                ci="bootstrap" if exact or m == RATE else "normal approx.",
            )
        )
    return rows


def _bh(p: pd.Series) -> np.ndarray:
    ok = p.notna().to_numpy()
    q = np.full(len(p), np.nan)
    if ok.any():
        q[ok] = sps.false_discovery_control(p.to_numpy()[ok])
    return q


def effects(prep: PreparedRun, boot: Boot, run_no: int) -> pd.DataFrame:
    """Rows: run, scope, factor, a, b, metric, ... for components, bet type and first result."""
    rows: list[dict] = []
    g = prep.games
    for s, (scope, part) in enumerate(scopes(g)):
        rng = boot.rng(2000 + run_no, s)
        for key in COMPONENT_KEYS:
            mask = part[key].to_numpy()
            if mask.all() or not mask.any():
                continue
            for r in compare(part[mask], part[~mask], boot, rng):
                rows.append(
                    dict(run=prep.label, scope=scope, factor=key, group_a="with", group_b="without", **r)
                )
        fr = part["first_result"]
        if (fr == "W").any() and (fr == "L").any():
            for r in compare(part[fr == "W"], part[fr == "L"], boot, rng):
                rows.append(
                    dict(run=prep.label, scope=scope, factor="first_result", group_a="W", group_b="L", **r)
                )
    bt = g["bet_type"]
    if (bt == "variable").any() and (bt == "fixed").any():
        for r in compare(g[bt == "variable"], g[bt == "fixed"], boot, boot.rng(3000 + run_no)):
            rows.append(
                dict(run=prep.label, scope="all", factor="bet_type", group_a="variable", group_b="fixed", **r)
            )
    out = pd.DataFrame(rows)
    if len(out):
        comp = out["factor"].isin(list(COMPONENT_KEYS))
        out["q_bh"] = np.nan
        for _, idx in out[comp].groupby(["scope", "metric"]).groups.items():
            out.loc[idx, "q_bh"] = _bh(out.loc[idx, "p"])
    return out


def component_trend(prep: PreparedRun) -> pd.DataFrame:
    """Pearson r (game level) of the number of components with bankruptcy and with the index."""
    rows = []
    for scope, part in scopes(prep.games):
        part = part[part["included"]]
        x = part["n_components"].to_numpy(dtype=float)
        for metric, col in ((RATE, "bankrupt"), ("index", "index"), ("n_rounds", "n_rounds")):
            r, p = pearson(x, part[col].to_numpy(dtype=float))
            rows.append(dict(run=prep.label, scope=scope, metric=metric, n_games=len(part), r=r, p=p))
    return pd.DataFrame(rows)


def correlation(conditions: pd.DataFrame) -> pd.DataFrame:
    """Index vs bankruptcy rate across conditions (one point per condition), per run and scope."""
    rows = []
    for run, part in conditions.groupby("run", sort=False):
        part = part[part["n_games"] > 0]
        for scope, sub in scopes(part):
            r, p = pearson(sub["index"].to_numpy(dtype=float), sub[RATE].to_numpy(dtype=float))
            rows.append(
                dict(run=run, scope=scope, n_conditions=len(sub), n_games=int(sub["n_games"].sum()), r=r, p=p)
            )
    return pd.DataFrame(rows)


def streaks(prep: PreparedRun, boot: Boot, run_no: int) -> pd.DataFrame:
    """After a streak of exactly k wins/losses: share of next decisions that bet again (continued)
    and share of next bets larger than the streak's last bet (rose), with intervals."""
    ev = prep.streaks
    rows = []
    for s, (scope, part) in enumerate(scopes(ev) if len(ev) else []):
        grouped = part.groupby(["streak", "k"]).agg(
            n_events=("continued", "size"), n_next_bets=("continued", "sum"), n_rose=("rose", "sum")
        )
        full = pd.MultiIndex.from_product([["win", "loss"], range(1, MAX_STREAK + 1)], names=["streak", "k"])
        grouped = grouped.reindex(full, fill_value=0).reset_index()
        rng = boot.rng(4000 + run_no, s)
        n_ev, n_bet, n_rose = (grouped[c].to_numpy() for c in ("n_events", "n_next_bets", "n_rose"))
        c_lo, c_hi = interval(rate_draws(n_bet, n_ev, boot, rng))
        r_lo, r_hi = interval(rate_draws(n_rose, n_bet, boot, rng))
        grouped.insert(0, "scope", scope)
        grouped.insert(0, "run", prep.label)
        with np.errstate(divide="ignore", invalid="ignore"):
            grouped["continued"] = np.where(n_ev > 0, n_bet / np.maximum(n_ev, 1), np.nan)
            grouped["rose"] = np.where(n_bet > 0, n_rose / np.maximum(n_bet, 1), np.nan)
        grouped["continued_lo"], grouped["continued_hi"] = c_lo, c_hi
        grouped["rose_lo"], grouped["rose_hi"] = r_lo, r_hi
        rows.append(grouped)
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame()
