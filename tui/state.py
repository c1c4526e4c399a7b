"""Fold events into per-worker, per-run and per-condition state; no Textual, no clock.

`MonitorState.apply()` takes the follower's batches; `MonitorState.view(now, stall_after)` gives
frozen snapshots the widgets render. "Now" is passed in, so stalls and ETAs are testable
without sleeping. A worker is identified by (run directory, pass kind, worker index): a run
may do a games pass and a patch pass, and a resumed run starts the same worker again. A pass kind
is read by its one name (`pass_name`: an older run's "patching" events are the patch pass's).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, fields

from harness.records import OUTCOMES, ErrorEvent, Event, GameDoneEvent, ProgressEvent
from harness.rundir.progress import WorkerState, endpoint_totals, node_labels, pass_name
from tui.follow import SourceBatch
from tui.views import ConditionRow, ErrorLine, MonitorView, WorkerView, summarize

WorkerKey = tuple[int, str, int]  # (source index, kind, worker)

#: Progress events say games_done/games_total too, but other events move those (the state's own).
_STATE_OWNED = {"games_done", "games_total", "gpu", "kind", "worker"}
#: The WorkerView fields that show the last ProgressEvent as it is, with their value before one.
PROGRESS_SHOWN = {
    f.name: (info.annotation() if info.is_required() and info.annotation else info.get_default())
    for f in fields(WorkerView)
    if f.name not in _STATE_OWNED and (info := ProgressEvent.model_fields.get(f.name)) is not None
}


def shown_progress(w: WorkerState) -> dict:
    """The last progress event's values a WorkerView shows (defaults before the first one)."""
    if w.progress is None:
        return dict(PROGRESS_SHOWN)
    return w.progress.model_dump(include=set(PROGRESS_SHOWN))


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
    games_from_file: set[int] = field(default_factory=set)
    """Sources whose games table comes from games.jsonl (the run reader's policy), not from events."""

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
            if b.games_reset or (b.games_followed and b.source not in self.games_from_file):
                self.games.pop((b.source, "games"), None)  # read again, or until now from events
            if b.games_followed:
                self.games_from_file.add(b.source)
                table = self.games.setdefault((b.source, "games"), {})
                for game_id, condition, outcome in b.games:
                    table.setdefault(game_id, (condition, outcome))  # a game's first copy, as every reader
            for ev in b.events:
                self.apply_event(b.source, ev)

    def apply_event(self, source: int, ev: Event) -> None:
        self.events_seen += 1
        kind = pass_name(ev.kind)
        key = (source, kind, ev.worker)
        w = self.workers.get(key)
        if w is None:
            w = self.workers[key] = WorkerState(source, kind, ev.worker)
        w.apply(ev)
        if isinstance(ev, GameDoneEvent) and source not in self.games_from_file:
            self.games.setdefault((source, kind), {}).setdefault(ev.game_id, (ev.condition_id, ev.outcome))
        elif isinstance(ev, ErrorEvent):
            self.errors.append(
                ErrorLine(ev.time, source, self.labels[source], ev.worker, ev.gpu, ev.message, ev.fatal)
            )

    def forget(self, source: int) -> None:
        """Drop what came from a file that was truncated or replaced; it is read again."""
        self.workers = {k: w for k, w in self.workers.items() if k[0] != source}
        self.games = {k: g for k, g in self.games.items() if k[0] != source or source in self.games_from_file}
        self.errors = deque((e for e in self.errors if e.source != source), maxlen=self.max_errors)
        self.malformed[source] = 0

    def view(self, now: float, stall_after: float) -> MonitorView:
        nodes = {source: node_labels(w for k, w in self.workers.items() if k[0] == source)
                 for source in {k[0] for k in self.workers}}
        workers = tuple(self._worker_view(w, now, stall_after, nodes[w.source][(w.host, w.node_id)])
                        for _, w in sorted(self.workers.items()))
        return MonitorView(
            workers=workers,
            summary=summarize(workers),
            conditions=self._conditions(),
            errors=tuple(self.errors),
            malformed=sum(self.malformed),
            last_malformed=self.last_malformed,
            waiting=tuple(label for label, ok in zip(self.labels, self.exists, strict=True) if not ok),
            read_errors=tuple(e for e in self.read_errors if e),
            endpoints=tuple(
                (label, e) for source, label in enumerate(self.labels)
                for e in endpoint_totals(w for k, w in sorted(self.workers.items()) if k[0] == source)
            ),
        )

    def _worker_view(self, w: WorkerState, now: float, stall_after: float, node: str | None) -> WorkerView:
        shown = shown_progress(w)
        age, idle = max(0.0, now - w.last_time), max(0.0, now - w.moved_time)
        stall = None
        if w.status == "running":
            stall = "silent" if age > stall_after else "no progress" if idle > stall_after else None
        return WorkerView(
            id=f"w-{w.source}-{w.kind}-{w.worker}",
            run=self.labels[w.source], show_run=len(self.labels) > 1,
            kind=w.kind, worker=w.worker, gpu=w.gpu, node=node, model=w.model, status=w.status,
            stalled=stall is not None, stall=stall, age_s=age, idle_s=idle,
            games_done=w.games_done, games_total=w.games_total, eta_s=w.eta_s(), wall_s=w.wall_s,
            **(shown | {"errors": max(shown["errors"], w.error_events)}),
        )

    def _conditions(self) -> tuple[ConditionRow, ...]:
        rows = []
        for (source, kind), games in sorted(self.games.items()):
            counts: dict[str, dict[str, int]] = {}
            for condition, outcome in games.values():
                c = counts.setdefault(condition, {})
                c[outcome] = c.get(outcome, 0) + 1
            for condition, c in sorted(counts.items()):
                per_outcome = tuple(c.get(outcome, 0) for outcome in OUTCOMES)
                rows.append(ConditionRow(self.labels[source], kind, condition, sum(c.values()), per_outcome))
        return tuple(rows)
