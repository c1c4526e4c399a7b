"""Behavioural analysis of game runs (docs/protocol.md §2): `harness analyze`.

Public API, imported lazily so the CLI stays fast: `load_run`, `analyse`, `write`,
`run_analysis`, `game_metrics`, `streak_events`, `Exclusion`, `Boot`.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "load_run": "harness.analysis.load",
    "RunData": "harness.analysis.load",
    "analyse": "harness.analysis.pipeline",
    "write": "harness.analysis.pipeline",
    "run_analysis": "harness.analysis.pipeline",
    "Results": "harness.analysis.results",
    "game_metrics": "harness.analysis.metrics",
    "streak_events": "harness.analysis.metrics",
    "Exclusion": "harness.analysis.tables",
    "Boot": "harness.analysis.stats",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'harness.analysis' has no attribute {name!r}")
