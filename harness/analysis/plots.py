"""The report's figures as PNG (matplotlib's Agg backend: no display needed). One panel per run
where runs are compared side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.metrics import MAX_STREAK
from harness.analysis.tables import RATE
from harness.game.conditions import COMPONENT_KEYS, all_component_combos


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panels(n: int, width: float, height: float):
    plt = _plt()
    fig, axes = plt.subplots(1, n, figsize=(width * n, height), squeeze=False)
    return plt, fig, axes[0]


def bankruptcy_heatmap(conditions: pd.DataFrame, path: Path) -> Path:
    """Bankruptcy % per condition: rows component subsets, columns bet type x first result."""
    runs = list(dict.fromkeys(conditions["run"]))
    plt, fig, axes = _panels(len(runs), 4.2, 9.0)
    order = all_component_combos()
    for ax, run in zip(axes, runs, strict=True):
        part = conditions[conditions["run"] == run]
        cols = sorted({f"{b}-{f}" for b, f in zip(part["bet_type"], part["first_result"], strict=True)})
        rows = [c for c in order if c in set(part["components"])]
        grid = np.full((len(rows), len(cols)), np.nan)
        for b, f, c, v in zip(
            part["bet_type"], part["first_result"], part["components"], part[RATE], strict=True
        ):
            grid[rows.index(c), cols.index(f"{b}-{f}")] = 100 * v
        im = ax.imshow(
            grid, aspect="auto", cmap="Reds", vmin=0, vmax=max(1.0, np.nanmax(grid) if grid.size else 1)
        )
        ax.set_xticks(range(len(cols)), cols, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=7)
        if len(rows) * len(cols) <= 160:
            for (i, j), v in np.ndenumerate(grid):
                if not np.isnan(v):
                    ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=6)
        ax.set_title(f"{run}\nbankruptcy % by condition", fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.05)
    return _save(plt, fig, path)


def bankruptcy_by_model(runs: pd.DataFrame, path: Path) -> Path:
    """The paper's bar chart: bankruptcy % per run (model), fixed vs variable betting, with the
    95% intervals of the runs table."""
    plt, fig, axes = _panels(1, 1.2 * max(4, runs["run"].nunique() * 1.6), 3.6)
    ax = axes[0]
    names = list(dict.fromkeys(runs["run"]))
    width = 0.38
    for k, (scope, colour) in enumerate((("fixed", "#4c72b0"), ("variable", "#c44e52"))):
        part = runs[runs["scope"] == scope].set_index("run")
        xs, ys, lo, hi = [], [], [], []
        for i, name in enumerate(names):
            if name not in part.index:
                continue
            r = part.loc[name]
            xs.append(i + (k - 0.5) * width)
            ys.append(100 * r[RATE])
            lo.append(100 * (r[RATE] - r.get(f"{RATE}_lo", r[RATE])))
            hi.append(100 * (r.get(f"{RATE}_hi", r[RATE]) - r[RATE]))
        ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, color=colour, label=f"{scope} betting")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("bankruptcy %")
    ax.set_title("Bankruptcy by model", fontsize=9)
    ax.legend(fontsize=8)
    return _save(plt, fig, path)


def index_scatter(conditions: pd.DataFrame, corr: pd.DataFrame, path: Path) -> Path:
    """Condition mean index vs bankruptcy rate, coloured by bet type, with Pearson r."""
    runs = list(dict.fromkeys(conditions["run"]))
    plt, fig, axes = _panels(len(runs), 4.5, 4.0)
    for ax, run in zip(axes, runs, strict=True):
        part = conditions[(conditions["run"] == run) & (conditions["n_games"] > 0)]
        for bet_type, colour in (("fixed", "tab:blue"), ("variable", "tab:red")):
            sub = part[part["bet_type"] == bet_type]
            ax.scatter(sub["index"], 100 * sub[RATE], s=14, c=colour, label=bet_type, alpha=0.8)
        row = corr[(corr["run"] == run) & (corr["scope"] == "all")]
        r, p = (row["r"].iloc[0], row["p"].iloc[0]) if len(row) else (np.nan, np.nan)
        ax.set_title(f"{run}\nr = {r:.2f} (p = {p:.2g}, {len(part)} conditions)", fontsize=9)
        ax.set_xlabel("mean irrationality index")
        ax.set_ylabel("bankruptcy %")
        ax.legend(fontsize=8)
    return _save(plt, fig, path)


def component_effects(effects: pd.DataFrame, path: Path) -> Path:
    """With-minus-without difference per component (bankruptcy pp, index), 95% intervals."""
    plt, fig, axes = _panels(2, 5.0, 3.8)
    comp = (
        effects[(effects["scope"] == "all") & effects["factor"].isin(list(COMPONENT_KEYS))]
        if len(effects)
        else effects
    )
    runs = list(dict.fromkeys(comp["run"])) if len(comp) else []
    width = 0.8 / max(1, len(runs))
    for ax, (metric, scale, label) in zip(
        axes, ((RATE, 100, "bankruptcy, percentage points"), ("index", 1, "mean index")), strict=True
    ):
        for i, run in enumerate(runs):
            sub = (
                comp[(comp["run"] == run) & (comp["metric"] == metric)]
                .set_index("factor")
                .reindex(list(COMPONENT_KEYS))
            )
            x = np.arange(len(COMPONENT_KEYS)) + i * width
            d = scale * sub["diff"].to_numpy(dtype=float)
            err = np.abs(
                np.vstack(
                    [
                        d - scale * sub["diff_lo"].to_numpy(dtype=float),
                        scale * sub["diff_hi"].to_numpy(dtype=float) - d,
                    ]
                )
            )
            ax.bar(x, d, width, yerr=np.nan_to_num(err), capsize=2, label=run)
        ax.axhline(0, color="black", lw=0.6)
        ax.set_xticks(np.arange(len(COMPONENT_KEYS)) + width * (len(runs) - 1) / 2, list(COMPONENT_KEYS))
        ax.set_title(f"with - without component: {label}", fontsize=9)
        if runs:
            ax.legend(fontsize=7)
    return _save(plt, fig, path)


def streak_curves(streaks: pd.DataFrame, path: Path) -> Path:
    """Share continuing and share raising the bet after k consecutive wins / losses."""
    plt, fig, axes = _panels(2, 4.8, 3.8)
    scope = "all"
    # Fixed bets never rise, so variable betting is shown when the run has it.
    data = streaks
    if len(streaks):
        scope = "variable" if (streaks["scope"] == "variable").any() else "all"
        data = streaks[streaks["scope"] == scope]
    for ax, (col, label) in zip(
        axes,
        (("continued", "share of next decisions that bet"), ("rose", "share of next bets that rose")),
        strict=True,
    ):
        for run in dict.fromkeys(data["run"]) if len(data) else []:
            for streak, style in (("win", "-o"), ("loss", "--s")):
                sub = data[(data["run"] == run) & (data["streak"] == streak)].sort_values("k")
                ax.plot(sub["k"], sub[col], style, label=f"{run}: {streak} streak", ms=4)
                ax.fill_between(sub["k"], sub[f"{col}_lo"], sub[f"{col}_hi"], alpha=0.15)
        ax.set_xlabel("streak length k")
        ax.set_xticks(range(1, MAX_STREAK + 1))
        ax.set_ylim(-0.02, 1.02)
        ax.set_title(f"{label} ({scope} betting)" if len(data) else label, fontsize=9)
        ax.legend(fontsize=7)
    return _save(plt, fig, path)


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
