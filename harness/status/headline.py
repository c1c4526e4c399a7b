"""Headline results of an experiment, read from the files its command wrote.

One reader per experiment kind, each returning small tables (`Headline`) for the status report:
bankruptcy rate per bet type for games (read with `harness.analysis.load`), the analysis report and
its per-run rates, an SAE's explained variance / L0 / dead features per layer (`layer_*/metrics.json`),
significant features per layer (`features_summary.csv`), patched features by class
(`patch_features.parquet`), the top words of the first features (`words.parquet`). File names are
those the `harness sae` commands write. A kind with nothing written yet has no headline.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from harness.errors import HarnessError
from harness.rundir.files import (
    FEATURES_SUMMARY,
    FEATURES_TABLE,
    GAMES_FILE,
    PATCH_FEATURES,
    PATHWAY_LAYERS,
    PATHWAY_SHARDS_DIR,
    REPORT_FILE,
    RUNS_TABLE,
    TABLES_DIR,
    WORDS_TABLE,
)
from harness.status.model import Headline
from harness.study.kinds import KINDS

#: Classes of `harness sae patch` (sae/patching/stats.py CLASSES), in report order.
PATCH_CLASSES = ("safe", "risky", "breaks_format", "none")
#: Outcomes with no behavioural result (harness.analysis.tables.NO_OUTCOME): left out of the rate.
NO_OUTCOME = ("invalid", "no_decision")
WORDS_FEATURES = 3


def _pct(k: int, n: int) -> str:
    return f"{100 * k / n:.1f} % ({k}/{n})" if n else "–"


def games(folder: Path) -> list[Headline]:
    from harness.analysis.load import load_run

    if not (folder / GAMES_FILE).is_file():
        return []
    run = load_run(folder)
    g = run.games
    used = g[~g["outcome"].isin(NO_OUTCOME)]
    rows = []
    for (model, bet_type), part in used.groupby(["model", "bet_type"], observed=True):
        rows.append([str(model), str(bet_type), _pct(int((part["outcome"] == "bankrupt").sum()), len(part))])
    for model, part in used.groupby("model", observed=True):
        rows.append([str(model), "all", _pct(int((part["outcome"] == "bankrupt").sum()), len(part))])
    rows.sort(key=lambda r: (r[0], r[1] == "all", r[1]))
    left = len(g) - len(used)
    return [Headline(
        title=f"Bankruptcy rate per bet type and model ({GAMES_FILE})",
        header=["model", "bet type", "bankrupt"], rows=rows,
        text=f"{len(g)} games read; {left} invalid or no_decision left out" if left else "",
    )]


def analyze(folder: Path) -> list[Headline]:
    report, runs = folder / REPORT_FILE, folder / TABLES_DIR / RUNS_TABLE
    if not report.is_file():
        return []
    rows = []
    if runs.is_file():
        t = pd.read_csv(runs)
        for r in t.to_dict("records"):
            n = int(r.get("n_games") or 0)
            rate = r.get("bankrupt_rate")
            rows.append([str(r.get("run")), str(r.get("scope")), str(n),
                         "–" if pd.isna(rate) else f"{100 * float(rate):.1f} %"])
    return [Headline(title=f"Bankruptcy rate per run ({TABLES_DIR}/{RUNS_TABLE})",
                     header=["run", "scope", "games", "bankrupt"], rows=rows, text=f"report: {report}")]


def train(folder: Path) -> list[Headline]:
    rows = []
    for path in sorted(folder.glob("layer_*/metrics.json"), key=lambda p: int(p.parent.name.split("_")[1])):
        m = json.loads(path.read_text())
        d_sae = int(m.get("d_sae") or 0)
        rows.append([str(m["layer"]), f"{m['explained_variance']:.3f}", f"{m['mean_l0']:.1f}",
                     f"{m['dead_features']}/{d_sae}", str(m.get("steps", "–"))])
    if not rows:
        return []
    return [Headline(title="SAE per layer (layer_*/metrics.json, held-out tokens)",
                     header=["layer", "explained variance", "L0", "dead", "steps"], rows=rows)]


def features(folder: Path) -> list[Headline]:
    summary, table = folder / FEATURES_SUMMARY, folder / FEATURES_TABLE
    if summary.is_file():
        s = pd.read_csv(summary)
    elif table.is_file():
        t = pd.read_parquet(table)
        sig = t[t["significant"]]
        s = pd.DataFrame({
            "tested": t.groupby("layer").size(),
            "significant": sig.groupby("layer").size(),
            "risky": sig[sig["direction"] == "risky"].groupby("layer").size(),
            "safe": sig[sig["direction"] == "safe"].groupby("layer").size(),
        }).fillna(0).rename_axis("layer").reset_index()
    else:
        return []
    cols = ["layer", "tested", "significant", "risky", "safe"]
    rows = [[str(int(r[c])) for c in cols] for r in s.to_dict("records")]
    total = int(s["significant"].sum())
    return [Headline(title=f"Significant features per layer ({FEATURES_SUMMARY})", header=cols, rows=rows,
                     text=f"{total} significant features in all")]


def pathway(folder: Path) -> list[Headline]:
    path = folder / PATHWAY_LAYERS
    if not path.is_file():
        return [Headline(title="Pathway", text="shards only: no comparison written")] \
            if (folder / PATHWAY_SHARDS_DIR).is_dir() else []
    t = pd.read_csv(path)
    cols = ["layer", "games_bankrupt", "games_stopped", "max_abs_d"]
    rows = [[str(r["layer"]), str(r["games_bankrupt"]), str(r["games_stopped"]), f"{r['max_abs_d']:.3f}"]
            for r in t[cols].to_dict("records")]
    return [Headline(title=f"Pathway per layer ({PATHWAY_LAYERS})", header=cols, rows=rows)]


def patch(folder: Path) -> list[Headline]:
    path = folder / PATCH_FEATURES
    if not path.is_file():
        return []
    t = pd.read_parquet(path)
    rows = []
    for layer, part in t.groupby("layer", sort=True):
        counts = part["classification"].value_counts()
        rows.append([str(layer), *(str(int(counts.get(c, 0))) for c in PATCH_CLASSES)])
    counts = t["classification"].value_counts()
    rows.append(["all", *(str(int(counts.get(c, 0))) for c in PATCH_CLASSES)])
    return [Headline(title=f"Patched features by effect ({PATCH_FEATURES})",
                     header=["layer", *PATCH_CLASSES], rows=rows)]


def words(folder: Path) -> list[Headline]:
    path = folder / WORDS_TABLE
    if not path.is_file():
        return []
    t = pd.read_parquet(path).head(WORDS_FEATURES)
    rows = []
    for r in t.to_dict("records"):
        label = r.get("classification") or r.get("direction") or ""
        rows.append([str(r["layer"]), str(r["feature"]), str(label), _short(r.get("high_words")),
                     _short(r.get("promotes"))])
    return [Headline(title=f"Top words of the first {len(rows)} features ({WORDS_TABLE})",
                     header=["layer", "feature", "class", "words in high answers", "promotes"], rows=rows)]


def _short(text, n: int = 80) -> str:
    text = "" if text is None or (isinstance(text, float) and pd.isna(text)) else str(text)
    text = text.replace("|", "/")  # a pipe would split the Markdown cell
    return text if len(text) <= n else text[: n - 1] + "…"


def headlines(kind: str, folder: Path) -> list[Headline]:
    """The headline tables of an experiment of `kind` whose outputs are in `folder`; a file that
    cannot be read gives one line saying so, never an exception."""
    row = KINDS.get(kind)
    if row is None or not folder.is_dir():
        return []
    reader: Callable[[Path], list[Headline]] = globals()[row.headline]
    try:
        return reader(folder)
    except (OSError, ValueError, KeyError, HarnessError) as e:
        return [Headline(title="Results", text=f"unreadable: {type(e).__name__}: {e}"[:300])]
