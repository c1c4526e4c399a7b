"""Fold a run's events into per-worker progress: what `harness status` and the monitor both show.

No clock and no I/O: events go in, a `WorkerState` per (pass kind, worker) comes out, so ETAs and
stalls are computed from the events' own times and a "now" the caller passes. A worker is one GPU
or CPU process of one pass; a resumed run starts the same worker again (its `run_start` resets the
state to running).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from harness.records import (
    EndpointStats,
    ErrorEvent,
    Event,
    GameDoneEvent,
    ProgressEvent,
    RunEndEvent,
    RunStartEvent,
)
from harness.rundir.files import OLD_PASS_NAMES

_IDLE_RATES = {"requests_per_s": 0.0, "tokens_per_s": 0.0, "in_flight": 0}
_IDLE_ENDPOINT = {"requests_per_s": 0.0, "tokens_per_s": 0.0, "in_flight": 0, "resting": False}


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
    progress: ProgressEvent | None = None
    """The last progress event (its rates zeroed once the worker restarts or ends)."""
    error_events: int = 0
    last_error: str | None = None
    pid: int | None = None
    """The process of the latest `run_start`, when it said."""
    host: str | None = None
    """The machine of the latest `run_start` (a Ray worker may run on another than the reader's)."""
    node_id: str | None = None
    """Its Ray node, for a Ray worker."""
    start_time: float = 0.0
    """Time of the latest `run_start` (0 when none was read)."""
    last_time: float = 0.0
    progress_time: float = 0.0
    # Last time games or requests moved. The runner's progress events are a heartbeat from
    # their own task, so a hung engine keeps writing them: silence alone misses that stall.
    moved_time: float = 0.0
    # Baseline of the games/s rate behind the ETA: set at (re)start, so a resume does not
    # count the games it found already done as fast work.
    base_time: float | None = None
    base_done: int = 0
    wall_s: float | None = None
    """The latest run_end's wall time (None while running)."""

    def apply(self, ev: Event) -> None:
        self.last_time = max(self.last_time, ev.time)
        self.gpu = ev.gpu if ev.gpu is not None else self.gpu
        if isinstance(ev, RunStartEvent):
            self.model, self.status, self.moved_time = ev.model, "running", ev.time
            self.pid, self.start_time = ev.pid, ev.time
            self.host, self.node_id = ev.host, ev.node_id
            # The runner counts games found done on resume in games_total (harness/run/worker_run.py).
            self.games_done = ev.games_already_done
            self.games_total = max(ev.games_total, ev.games_already_done)
            self.base_time, self.base_done = ev.time, ev.games_already_done
            self.wall_s = None
            self._idle()
        elif isinstance(ev, ProgressEvent):
            requests = self.progress.requests if self.progress is not None else 0
            if (ev.games_done, ev.requests) != (self.games_done, requests) or not self.moved_time:
                self.moved_time = ev.time
            self.progress, self.games_done, self.games_total = ev, ev.games_done, ev.games_total
            self.progress_time = ev.time
            if self.base_time is None:
                self.base_time, self.base_done = ev.time, ev.games_done
        elif isinstance(ev, GameDoneEvent) and ev.time >= self.progress_time:
            # Progress events come every few seconds; count games in between so bars move.
            self.games_done = min(self.games_done + 1, self.games_total or self.games_done + 1)
            self.moved_time = ev.time
        elif isinstance(ev, ErrorEvent):
            self.error_events += 1
            self.last_error = ev.message
            if ev.fatal:
                self.status = "failed"
        elif isinstance(ev, RunEndEvent):
            self.games_done, self.games_total, self.status = ev.games_done, ev.games_total, ev.status
            self.wall_s = ev.wall_s
            self._idle()

    def _idle(self) -> None:
        """No current rates: the process (re)started or ended."""
        if self.progress is not None:
            endpoints = [e.model_copy(update=_IDLE_ENDPOINT) for e in self.progress.endpoints]
            self.progress = self.progress.model_copy(update=_IDLE_RATES | {"endpoints": endpoints})

    def eta_s(self) -> float | None:
        """Seconds left at the games rate since this worker (re)started; None if unknown."""
        left = self.games_total - self.games_done
        if self.status != "running" or left <= 0 or self.base_time is None:
            return None
        elapsed, done = self.last_time - self.base_time, self.games_done - self.base_done
        return left * elapsed / done if elapsed > 0 and done > 0 else None


WorkerKey = tuple[str, int]  # (pass kind, worker)


def endpoint_totals(workers: Iterable[WorkerState]) -> list[EndpointStats]:
    """Each endpoint (by URL) summed over the workers' last progress events: counts and rates add
    up; latency percentiles are the slowest worker's (percentiles of several workers do not add);
    an endpoint rests if any worker rests it."""
    totals: dict[str, EndpointStats] = {}
    for w in workers:
        for e in w.progress.endpoints if w.progress is not None else []:
            t = totals.get(e.url)
            if t is None:
                totals[e.url] = e.model_copy()
                continue
            totals[e.url] = t.model_copy(update=dict(
                in_flight=t.in_flight + e.in_flight, requests=t.requests + e.requests,
                requests_per_s=t.requests_per_s + e.requests_per_s,
                tokens_per_s=t.tokens_per_s + e.tokens_per_s,
                transport_retries=t.transport_retries + e.transport_retries,
                rate_limited=t.rate_limited + e.rate_limited, failures=t.failures + e.failures,
                resting=t.resting or e.resting,
                latency_p50_s=_worst(t.latency_p50_s, e.latency_p50_s),
                latency_p95_s=_worst(t.latency_p95_s, e.latency_p95_s),
            ))
    return list(totals.values())


def node_labels(workers: Iterable[WorkerState]) -> dict[tuple[str | None, str | None], str | None]:
    """What tells the workers' machines apart, by (host, node id): the host name when they run on
    several hosts, the node id's start when several Ray nodes share a host, None on one machine."""
    places = {(w.host, w.node_id) for w in workers}
    if len(places) < 2:
        return dict.fromkeys(places)
    if len({h for h, _ in places}) > 1:
        return {(h, n): h for h, n in places}
    return {(h, n): (n[:8] if n else h) for h, n in places}


def _worst(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def pass_name(kind: str) -> str:
    """A pass kind by its one name: an older run's events of kind 'patching' are the 'patch' pass's."""
    return OLD_PASS_NAMES.get(kind, kind)


def fold_events(events: Iterable[Event], source: int = 0) -> dict[WorkerKey, WorkerState]:
    """Each worker's state after `events` (in file order), keyed by (pass kind, worker); a pass
    kind by its one name (`pass_name`)."""
    workers: dict[WorkerKey, WorkerState] = {}
    for ev in events:
        key = (pass_name(ev.kind), ev.worker)
        if key not in workers:
            workers[key] = WorkerState(source, key[0], ev.worker)
        workers[key].apply(ev)
    return workers
