"""The SAE passes' figures (PNG, matplotlib's Agg backend), drawn with the analysis report's panel
helpers: `harness sae features` the top features' effect sizes per layer, `sae pathway` each top
feature's mean activation by round, bankrupt vs stopped games."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.plots import _panels, _save

#: Features per layer the effects figure shows (the largest |d|).
TOP_PER_LAYER = 10


def features_effects(table: pd.DataFrame, path: Path) -> Path:
    """Cohen's d of each layer's top features (by |d|), risky (d > 0, more active in bankrupt
    games) in red, safe in blue; significant ones filled, the rest hollow."""
    plt, fig, axes = _panels(1, 7.0, 4.0)
    ax = axes[0]
    if len(table) and "d" in table:
        ranked = table.assign(abs_d=table["d"].abs()).sort_values("abs_d", ascending=False)
        top = ranked.groupby("layer", sort=True).head(TOP_PER_LAYER)
        for _, r in top.iterrows():
            colour = "#c44e52" if r["d"] > 0 else "#4c72b0"
            filled = bool(r.get("significant", False))
            ax.scatter(r["layer"], r["d"], s=28, color=colour if filled else "none", edgecolors=colour)
        ax.axhline(0, color="grey", linewidth=0.6)
        layers = sorted(top["layer"].unique())
        ax.set_xticks(layers, [str(int(x)) for x in layers])
    else:
        ax.text(0.5, 0.5, "no feature tested", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("layer")
    ax.set_ylabel("Cohen's d (bankrupt - stopped)")
    ax.set_title(f"Top {TOP_PER_LAYER} features per layer by |d| (filled: significant)", fontsize=9)
    return _save(plt, fig, path)


def pathway_heatmap(cells: pd.DataFrame, top: pd.DataFrame, path: Path) -> Path:
    """Feature x round heatmaps, one pair of panels (bankrupt, stopped) per layer: each top
    feature's mean activation over the decisions of that round."""
    layers = sorted(cells["layer"].unique())
    groups = ["bankrupt", "stopped"]
    plt, fig, axes = _panels(2 * len(layers), 4.0, 3.4)
    vmax = float(cells["mean_activation"].max()) if len(cells) else 1.0
    for i, layer in enumerate(layers):
        part = cells[cells["layer"] == layer]
        ranked = top[top["layer"] == layer].sort_values("rank")["feature"].tolist()
        order = ranked or sorted(part["feature"].unique())
        rounds = sorted(part["round"].unique())
        for j, group in enumerate(groups):
            ax = axes[2 * i + j]
            grid = (part[part["group"] == group].pivot_table(index="feature", columns="round",
                                                              values="mean_activation")
                    .reindex(index=order, columns=rounds))
            ax.imshow(grid.to_numpy(dtype=float), aspect="auto", cmap="viridis", vmin=0, vmax=max(vmax, 1e-9),
                      interpolation="nearest")
            ax.set_yticks(range(len(order)), [str(f) for f in order], fontsize=6)
            spread = np.linspace(0, len(rounds) - 1, min(len(rounds), 8)) if rounds else np.zeros(0)
            ticks: list[int] = spread.round().astype(int).tolist()
            ax.set_xticks(ticks, [str(rounds[t]) for t in ticks], fontsize=7)
            ax.set_xlabel("round")
            ax.set_title(f"layer {layer}: {group} games", fontsize=8)
    return _save(plt, fig, path)
