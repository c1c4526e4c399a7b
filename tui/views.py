"""Frozen snapshots of the monitor state, as the widgets show them.

Values compare equal when nothing changed, so a reactive holding one skips the repaint.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.records import OUTCOMES, EndpointStats


@dataclass(frozen=True)
class WorkerView:
    """A worker as one panel shows it."""

    id: str
    run: str
    show_run: bool
    """Several runs are watched, so the panel names its run."""
    kind: str
    worker: int
    gpu: str | None
    node: str | None
    """Its machine, when the run's workers are on several (Ray); None on one machine."""
    model: str
    status: str
    stalled: bool
    """Running, and silent or without progress for longer than the stall threshold."""
    stall: str | None
    """Why: "silent" (no event at all) or "no progress" (heartbeats only); None if not stalled."""
    age_s: float
    """Seconds since the last event."""
    idle_s: float
    """Seconds since games or requests last moved."""
    games_done: int
    games_total: int
    requests_per_s: float
    tokens_per_s: float
    avg_requests_per_s: float
    avg_tokens_per_s: float
    eta_s: float | None
    wall_s: float | None
    retries: int
    empty_retries: int
    invalid: int
    errors: int
    in_flight: int
    gpu_memory_used_mb: float | None
    gpu_memory_total_mb: float | None
    gpu_utilization: float | None


@dataclass(frozen=True)
class SummaryRow:
    """One run, model and pass kind, summed over its workers."""

    run: str
    model: str
    kind: str
    workers: int
    games_done: int
    games_total: int
    requests_per_s: float
    tokens_per_s: float
    errors: int
    invalid: int
    stalled: int
    eta_s: float | None
    status: str
    wall_s: float | None = None
    """Once every worker has ended: the longest worker's wall time."""


@dataclass(frozen=True)
class ConditionRow:
    """Outcomes so far of one condition (from game_done events, each game counted once)."""

    run: str
    kind: str
    condition: str
    games: int
    counts: tuple[int, ...]
    """Games per outcome, in `harness.records.OUTCOMES` order."""

    def count(self, outcome: str) -> int:
        return self.counts[OUTCOMES.index(outcome)]


@dataclass(frozen=True)
class ErrorLine:
    """One ErrorEvent, for the log pane."""

    time: float
    source: int
    run: str
    worker: int
    gpu: str | None
    message: str
    fatal: bool


@dataclass(frozen=True)
class ExperimentRow:
    """One experiment of a study, as its panel shows it (judged as `harness status` judges it)."""

    id: str
    name: str
    kind: str
    state: str
    """not started, running, complete, stalled, failed or interrupted."""
    done: int | None
    total: int | None
    eta_s: float | None
    devices: str
    gpu_memory: str | None
    note: str


@dataclass(frozen=True)
class MonitorView:
    """Everything the screens show, as of `now`."""

    workers: tuple[WorkerView, ...]
    summary: tuple[SummaryRow, ...]
    conditions: tuple[ConditionRow, ...]
    errors: tuple[ErrorLine, ...]
    malformed: int
    last_malformed: str | None
    waiting: tuple[str, ...]
    """Runs whose event file does not exist (yet)."""
    read_errors: tuple[str, ...] = ()
    """Files that could not be read at the last poll, with why."""
    experiments: tuple[ExperimentRow, ...] = ()
    """A study's experiments, in its file's order (empty when watching run directories)."""
    endpoints: tuple[tuple[str, EndpointStats], ...] = ()
    """(run, endpoint) of runs on the openai backend, summed over each run's workers."""


def summarize(workers: tuple[WorkerView, ...]) -> tuple[SummaryRow, ...]:
    """Sum workers per (run, model, kind). Workers run in parallel, so the ETA is the slowest's."""
    groups: dict[tuple[str, str, str], list[WorkerView]] = {}
    for w in workers:
        groups.setdefault((w.run, w.model, w.kind), []).append(w)
    rows = []
    for (run, model, kind), ws in groups.items():
        etas = [w.eta_s for w in ws if w.eta_s is not None]
        statuses = {w.status for w in ws}
        status = statuses.pop() if len(statuses) == 1 else "running" if "running" in statuses else "mixed"
        walls = [w.wall_s for w in ws]
        rows.append(SummaryRow(
            run, model, kind, len(ws), sum(w.games_done for w in ws), sum(w.games_total for w in ws),
            sum(w.requests_per_s for w in ws), sum(w.tokens_per_s for w in ws),
            sum(w.errors for w in ws), sum(w.invalid for w in ws), sum(w.stalled for w in ws),
            max(etas) if etas else None, status,
            max(x for x in walls if x is not None) if all(x is not None for x in walls) else None,
        ))
    return tuple(rows)
