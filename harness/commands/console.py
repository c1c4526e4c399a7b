"""Terminal output of `harness run games`: a live progress bar and the closing summary."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.records import OUTCOMES, GameRecord


def format_outcomes(counts: Mapping[str, int]) -> str:
    """"bankrupt 3 stopped 5 max_rounds 0 no_decision 0 invalid 1": every outcome, zeros included."""
    return " ".join(f"{outcome} {counts.get(outcome, 0)}" for outcome in OUTCOMES)


class GameProgress:
    """A rich progress bar fed by `update(record, stats)` after each game."""

    def __init__(self, total: int, done: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]games"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled,
        )
        self.task = self.progress.add_task("games", total=total, completed=done, info="")

    def __enter__(self) -> GameProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def update(self, record: GameRecord, stats) -> None:
        info = f"{format_outcomes(stats.outcomes)} retries {stats.retries}"
        self.progress.update(self.task, advance=1, info=info)


def decision_counts(parse_kinds: dict[str, int]) -> str:
    """'final_decision 120, fallback 3, extracted 9': how the decisions of this run were read."""
    order = ("final_decision", "first_line", "extracted", "fallback")
    return ", ".join(f"{k} {parse_kinds[k]}" for k in order if parse_kinds.get(k)) or "none"


def print_summary(out: str, result) -> None:
    """Closing summary: games, outcomes, decisions by parse kind, retries, wall time, requests/s, tokens/s."""
    s = result.stats
    wall = max(result.wall_s, 1e-9)
    print(
        f"{out}: {result.games_done}/{result.games_total} games ({s.games_done} this run) | "
        f"{format_outcomes(s.outcomes)} | decisions: {decision_counts(s.parse_kinds)} | "
        f"retries {s.retries} (empty {s.empty_retries}) errors {s.errors} | "
        f"wall {wall:.1f} s | {s.requests / wall:.2f} requests/s | {s.tokens_out / wall:.1f} tokens/s"
        + ("" if result.status == "complete" else f" | status {result.status}: rerun to resume")
    )
