"""`harness analyze` end to end: load runs, compute every table, write CSV + Parquet, the
figures and `report.md`. Pure computation (`analyse`) is kept apart from writing (`write`)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from harness.analysis import effects as fx
from harness.analysis import plots
from harness.analysis.load import AnalysisInputError, RunData, load_run, unique_labels
from harness.analysis.report import render
from harness.analysis.results import DEFAULT_BOOT, DEFAULT_EXCLUSION, TABLES, Results
from harness.analysis.stats import Boot
from harness.analysis.tables import Exclusion, completeness_row, prepare, round_table, run_tables
from harness.rundir.files import GAMES_FILE, REPORT_FILE


def analyse(
    runs: list[RunData], exclusion: Exclusion = DEFAULT_EXCLUSION, boot: Boot = DEFAULT_BOOT
) -> Results:
    """Compute all tables for one or more runs (one per model, side by side)."""
    unique_labels(runs)
    prepared = [prepare(r, exclusion) for r in runs]
    parts: dict[str, list[pd.DataFrame]] = {}

    def add(name: str, df: pd.DataFrame) -> None:
        if len(df):
            parts.setdefault(name, []).append(df)

    for i, p in enumerate(prepared):
        for name, df in run_tables(p, boot, i).items():
            add(name, df)
        add("effects", fx.effects(p, boot, i))
        add("component_trend", fx.component_trend(p))
        add("streaks", fx.streaks(p, boot, i))
        games = p.games.drop(columns=list("GMHWP")).copy()
        games.insert(0, "run", p.label)
        add("games", games)
        add("rounds", round_table(p))
    tables = {k: pd.concat(v, ignore_index=True) for k, v in parts.items()}
    tables["completeness"] = pd.DataFrame([completeness_row(p) for p in prepared])
    if "conditions" in tables:
        tables["correlation"] = fx.correlation(tables["conditions"])
    for name in TABLES:
        tables.setdefault(name, pd.DataFrame())
    return Results({k: tables[k] for k in TABLES}, prepared, exclusion, boot)


def write(results: Results, out: Path, *, figures: bool = True) -> Path:
    """Write tables (CSV + Parquet), figures (PNG) and report.md into `out`; returns the report."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "tables").mkdir(exist_ok=True)
    for name, df in results.tables.items():
        table = pa.Table.from_pandas(df, preserve_index=False)
        pacsv.write_csv(table, out / "tables" / f"{name}.csv")  # about 10x pandas' to_csv
        pq.write_table(table, out / "tables" / f"{name}.parquet")
    if figures:
        t = results.tables
        fig_dir = out / "figures"
        fig_dir.mkdir(exist_ok=True)
        if len(t["conditions"]):
            results.figures["bankruptcy_heatmap"] = plots.bankruptcy_heatmap(
                t["conditions"], fig_dir / "bankruptcy_heatmap.png"
            )
            results.figures["index_vs_bankruptcy"] = plots.index_scatter(
                t["conditions"], t["correlation"], fig_dir / "index_vs_bankruptcy.png"
            )
        results.figures["component_effects"] = plots.component_effects(
            t["effects"], fig_dir / "component_effects.png"
        )
        results.figures["streak_curves"] = plots.streak_curves(t["streaks"], fig_dir / "streak_curves.png")
        if len(t["runs"]) and t["runs"]["run"].nunique() > 1:  # the paper's per-model bars
            results.figures["bankruptcy_by_model"] = plots.bankruptcy_by_model(
                t["runs"], fig_dir / "bankruptcy_by_model.png"
            )
    report = out / REPORT_FILE
    report.write_text(render(results, out))
    return report


def _each_once(run_dirs: list[Path]) -> None:
    """A run given twice would stand beside itself as two models: refused."""
    seen: dict[Path, Path] = {}
    for d in run_dirs:
        key = (d if d.is_file() else d / GAMES_FILE).resolve()
        if key in seen:
            raise AnalysisInputError(f"{d}: the same run as {seen[key]}; give each run once")
        seen[key] = d


def run_analysis(
    run_dirs: list[Path],
    out: Path,
    exclusion: Exclusion = DEFAULT_EXCLUSION,
    boot: Boot = DEFAULT_BOOT,
    figures: bool = True,
) -> Path:
    """Load, analyse, write. Returns the path of report.md."""
    _each_once(run_dirs)
    return write(analyse([load_run(d) for d in run_dirs], exclusion, boot), out, figures=figures)
