"""Fold events into per-worker, per-run and per-condition state; no Textual, no clock.

`MonitorState.apply()` takes the follower's batches; `MonitorState.view(now, stall_after)` gives
frozen snapshots the widgets render. "Now" is passed in, so stalls and ETAs are testable
without sleeping. A worker is identified by (run directory, pass kind, worker index): a run
may do a games pass and a patching pass, and a resumed run starts the same worker again.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from harness.records import ErrorEvent, Event, GameDoneEvent, ProgressEvent, RunEndEvent, RunStartEvent
from tui.follow import SourceBatch

WorkerKey = tuple[int, str, int]  # (source index, kind, worker)


@dataclass
class WorkerState:
    """What is known about one worker (one GPU or CPU process) of one pass."""

    source: int
    kind: str
    worker: int
    gpu: str | None = None
    model: str = "?"
    status: str = "running"  # running | complete | incomplete | failed | interrupted
    games_done: int = 0
    games_total: int = 0
    requests: int = 0
    requests_per_s: float = 0.0
    tokens_per_s: float = 0.0
    avg_requests_per_s: float = 0.0
    avg_tokens_per_s: float = 0.0
    retries: int = 0
    empty_retries: int = 0
    invalid: int = 0
    errors: int = 0
    error_events: int = 0
    in_flight: int = 0
    gpu_memory_used_mb: float | None = None
    gpu_memory_total_mb: float | None = None
    gpu_utilization: float | None = None
    last_time: float = 0.0
    progress_time: float = 0.0
    # Baseline of the games/s rate behind the ETA: set at (re)start, so a resume does not
    # count the games it found already done as fast work.
    base_time: float | None = None
    base_done: int = 0

    def apply(self, ev: Event) -> None:
        self.last_time = max(self.last_time, ev.time)
        self.gpu = ev.gpu if ev.gpu is not None else self.gpu
        if isinstance(ev, RunStartEvent):
            self.model, self.status = ev.model, "running"
            # The runner counts games found done on resume in games_total (harness/session.py).
            self.games_done = ev.games_already_done
            self.games_total = max(ev.games_total, ev.games_already_done)
            self.base_time, self.base_done = ev.time, ev.games_already_done
            self.requests_per_s = self.tokens_per_s = 0.0
        elif isinstance(ev, ProgressEvent):
            for name in (
                "games_done", "games_total", "requests", "requests_per_s", "tokens_per_s",
                "avg_requests_per_s", "avg_tokens_per_s", "retries", "empty_retries", "invalid",
                "errors", "in_flight", "gpu_memory_used_mb", "gpu_memory_total_mb", "gpu_utilization",
            ):
                setattr(self, name, getattr(ev, name))
            self.progress_time = ev.time
            if self.base_time is None:
                self.base_time, self.base_done = ev.time, ev.games_done
        elif isinstance(ev, GameDoneEvent) and ev.time >= self.progress_time:
            # Progress events come every few seconds; count games in between so bars move.
            self.games_done = min(self.games_done + 1, self.games_total or self.games_done + 1)
        elif isinstance(ev, ErrorEvent):
            self.error_events += 1
            if ev.fatal:
                self.status = "failed"
        elif isinstance(ev, RunEndEvent):
            self.games_done, self.games_total, self.status = ev.games_done, ev.games_total, ev.status
            self.requests_per_s = self.tokens_per_s = 0.0

    def eta_s(self) -> float | None:
        """Seconds left at the games rate since this worker (re)started; None if unknown."""
        left = self.games_total - self.games_done
        if self.status != "running" or left <= 0 or self.base_time is None:
            return None
        elapsed, done = self.last_time - self.base_time, self.games_done - self.base_done
        return left * elapsed / done if elapsed > 0 and done > 0 else None


@dataclass(frozen=True)
class WorkerView:
    """A worker as one panel shows it."""

    id: str
    run: str
    kind: str
    worker: int
    gpu: str | None
    model: str
    status: str
    stalled: bool
    age_s: float
    games_done: int
    games_total: int
    requests_per_s: float
    tokens_per_s: float
    avg_requests_per_s: float
    avg_tokens_per_s: float
    eta_s: float | None
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


@dataclass(frozen=True)
class ConditionRow:
    """Outcomes so far of one condition (from game_done events, each game counted once)."""

    run: str
    kind: str
    condition: str
    games: int
    bankrupt: int
    stopped: int
    max_rounds: int
    invalid: int


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


@dataclass
class MonitorState:
    """All runs being watched. `labels[i]` names source i (its directory)."""

    labels: list[str]
    max_errors: int = 200
    workers: dict[WorkerKey, WorkerState] = field(default_factory=dict)
    games: dict[tuple[int, str], dict[str, tuple[str, str]]] = field(default_factory=dict)
    errors: deque[ErrorLine] = field(default_factory=deque)
    malformed: list[int] = field(default_factory=list)
    last_malformed: str | None = None
    exists: list[bool] = field(default_factory=list)
    read_errors: list[str | None] = field(default_factory=list)
    events_seen: int = 0

    def __post_init__(self) -> None:
        self.errors = deque(self.errors, maxlen=self.max_errors)
        self.malformed = [0] * len(self.labels)
        self.exists = [False] * len(self.labels)
        self.read_errors = [None] * len(self.labels)

    def apply(self, batches: list[SourceBatch]) -> None:
        for b in batches:
            if b.reset:
                self.forget(b.source)
            self.exists[b.source] = b.exists
            self.read_errors[b.source] = b.error
            self.malformed[b.source] += b.malformed
            if b.last_malformed:
                self.last_malformed = f"{self.labels[b.source]}: {b.last_malformed}"
            for ev in b.events:
                self.apply_event(b.source, ev)

    def apply_event(self, source: int, ev: Event) -> None:
        self.events_seen += 1
        key = (source, ev.kind, ev.worker)
        w = self.workers.get(key)
        if w is None:
            w = self.workers[key] = WorkerState(source, ev.kind, ev.worker)
        w.apply(ev)
        if isinstance(ev, GameDoneEvent):
            self.games.setdefault((source, ev.kind), {})[ev.game_id] = (ev.condition_id, ev.outcome)
        elif isinstance(ev, ErrorEvent):
            self.errors.append(
                ErrorLine(ev.time, source, self.labels[source], ev.worker, ev.gpu, ev.message, ev.fatal)
            )

    def forget(self, source: int) -> None:
        """Drop what came from a file that was truncated or replaced; it is read again."""
        self.workers = {k: w for k, w in self.workers.items() if k[0] != source}
        self.games = {k: g for k, g in self.games.items() if k[0] != source}
        self.errors = deque((e for e in self.errors if e.source != source), maxlen=self.max_errors)
        self.malformed[source] = 0

    def view(self, now: float, stall_after: float) -> MonitorView:
        workers = tuple(self._worker_view(w, now, stall_after) for _, w in sorted(self.workers.items()))
        return MonitorView(
            workers=workers,
            summary=summarize(workers),
            conditions=self._conditions(),
            errors=tuple(self.errors),
            malformed=sum(self.malformed),
            last_malformed=self.last_malformed,
            waiting=tuple(label for label, ok in zip(self.labels, self.exists, strict=True) if not ok),
            read_errors=tuple(e for e in self.read_errors if e),
        )

    def _worker_view(self, w: WorkerState, now: float, stall_after: float) -> WorkerView:
        age = max(0.0, now - w.last_time)
        return WorkerView(
            id=f"w-{w.source}-{w.kind}-{w.worker}",
            run=self.labels[w.source],
            kind=w.kind, worker=w.worker, gpu=w.gpu, model=w.model, status=w.status,
            stalled=w.status == "running" and age > stall_after, age_s=age,
            games_done=w.games_done, games_total=w.games_total,
            requests_per_s=w.requests_per_s, tokens_per_s=w.tokens_per_s,
            avg_requests_per_s=w.avg_requests_per_s, avg_tokens_per_s=w.avg_tokens_per_s,
            eta_s=w.eta_s(), retries=w.retries, empty_retries=w.empty_retries, invalid=w.invalid,
            errors=max(w.errors, w.error_events), in_flight=w.in_flight,
            gpu_memory_used_mb=w.gpu_memory_used_mb, gpu_memory_total_mb=w.gpu_memory_total_mb,
            gpu_utilization=w.gpu_utilization,
        )

    def _conditions(self) -> tuple[ConditionRow, ...]:
        rows = []
        for (source, kind), games in sorted(self.games.items()):
            counts: dict[str, dict[str, int]] = {}
            for condition, outcome in games.values():
                c = counts.setdefault(condition, {})
                c[outcome] = c.get(outcome, 0) + 1
            for condition, c in sorted(counts.items()):
                rows.append(ConditionRow(
                    self.labels[source], kind, condition, sum(c.values()), c.get("bankrupt", 0),
                    c.get("stopped", 0), c.get("max_rounds", 0), c.get("invalid", 0),
                ))
        return tuple(rows)


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
        rows.append(SummaryRow(
            run, model, kind, len(ws), sum(w.games_done for w in ws), sum(w.games_total for w in ws),
            sum(w.requests_per_s for w in ws), sum(w.tokens_per_s for w in ws),
            sum(w.errors for w in ws), sum(w.invalid for w in ws), sum(w.stalled for w in ws),
            max(etas) if etas else None, status,
        ))
    return tuple(rows)
