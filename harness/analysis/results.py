"""What an analysis computes (`Results`) and the tables and figures it holds by name: what
`pipeline` fills in and `report` writes about, so neither imports the other."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from harness.analysis.stats import Boot
from harness.analysis.tables import Exclusion, PreparedRun

#: Table name -> what it holds (written as NAME.csv and NAME.parquet; listed in the report).
TABLES = {
    "completeness": (
        "decision mode, games read vs expected, torn/bad lines, duplicates, games that do not add up "
        "(inconsistent), invalid, no_decision and guessed counts per run"
    ),
    "runs": "per run and bet type (scope): rates, means and 95% intervals",
    "conditions": "per condition: rates, means and 95% intervals, decisions by parse kind (decisions_*)",
    "correlation": "index vs bankruptcy rate across conditions (Pearson r, p)",
    "effects": "with vs without each component, variable vs fixed, first result W vs L",
    "n_components": "per number of prompt components",
    "component_trend": "game-level Pearson r of the number of components with each metric",
    "first_result": "per forced first result (W/L)",
    "streaks": "win/loss streak chasing, k = 1..5",
    "games": "one row per game with its metrics and whether it was used",
    "rounds": "one row per round: its game's keys, balance, decision, bet, result, parse kind, re-asks, "
    "transport retries, tokens, latency, and whether the round before was a loss (after_loss)",
}
FIGURES = {
    "bankruptcy_heatmap": "bankruptcy % by condition",
    "index_vs_bankruptcy": "condition mean index vs bankruptcy rate, with r",
    "component_effects": "effect of each prompt component (with - without)",
    "streak_curves": "win/loss streak chasing",
    "bankruptcy_by_model": "bankruptcy % per run (model), fixed vs variable betting (several runs)",
}


@dataclass
class Results:
    """Every table of an analysis, plus what the report needs to say about it."""

    tables: dict[str, pd.DataFrame]
    runs: list[PreparedRun]
    exclusion: Exclusion
    boot: Boot
    figures: dict[str, Path] = field(default_factory=dict)


DEFAULT_EXCLUSION = Exclusion()
DEFAULT_BOOT = Boot()
