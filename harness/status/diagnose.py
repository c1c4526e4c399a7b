"""An experiment's state and what went wrong, in plain words, from its facts and "now".

Pure: no files, no clock (`now` is passed in), so every rule is a row of a table test.

States: `not started`, `running`, `complete`, `stalled`, `failed`, `interrupted`. A final state on
record (complete, failed, interrupted) is taken as recorded. Otherwise the events and the processes
decide; the diagnoses, first match wins for the note:

- the process died: `running` on record (or a run_start without run_end) and its pid is gone;
- stalled: the process lives but nothing (no event, no log growth) came for the stall window
  (said as "stuck before its first unit" when that is why);
- frozen: nothing done since the (re)start for the window while retries climb;
- stuck before its first unit: a run_start, then no progress event for the window;
- no progress: heartbeats only (games and requests still) for the window.
An `analyze` experiment writes no progress events: it is never stalled by its silence.
A worker that died under a living driver, game errors and unreadable lines are reported besides.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.rundir.files import EVENTS_FILE, GAMES_FILE, LOCK_FILE
from harness.rundir.progress import WorkerState
from harness.status.facts import ExperimentFacts, local
from harness.status.model import State
from harness.study.kinds import pass_kind_of


@dataclass
class Verdict:
    """What `harness status` says about one experiment."""

    state: State
    note: str = ""
    diagnoses: list[str] = field(default_factory=list)
    done: int | None = None
    total: int | None = None
    eta_s: float | None = None


def span(seconds: float) -> str:
    """'42 s', '3.5 min' or '2.1 h'."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def waits_for(needs: list[str], states: dict[str, str]) -> str:
    """The note of an experiment not started: 'waits for a, b' (its inputs not complete), or ''."""
    missing = [n for n in needs if states.get(n) != "complete"]
    return f"waits for {', '.join(missing)}" if missing else ""


def _pids(f: ExperimentFacts) -> list[int]:
    """The processes that should be alive: the recorded one, else the running workers' on this
    machine (their events' host)."""
    if f.recorded is not None and f.recorded.pid is not None:
        return [f.recorded.pid]
    return [w.pid for w in f.workers if w.status == "running" and w.pid is not None and local(w)]


def _remote(f: ExperimentFacts) -> list[WorkerState]:
    """Running workers on other machines (Ray): no local /proc to ask, only their heartbeats and
    the driver that writes them."""
    return [w for w in f.workers if w.status == "running" and w.pid is not None and not local(w)]


def _driver_gone(f: ExperimentFacts, remote: list[WorkerState], now: float, window: float) -> Verdict | None:
    """Remote workers with no driver here: lost once their heartbeats are older than the window
    (a driver on another machine sharing the disk keeps them fresh); None while they are fresh."""
    quiet = now - max(w.last_time for w in remote)
    if f.driver_pid is not None or quiet <= window:
        return None
    who = ", ".join(f"worker {w.worker} on {w.host or '?'}" for w in remote)
    return Verdict("failed", f"no event for {span(quiet)} from {who}, no run_end, and no process here holds "
                             f"{LOCK_FILE}: the driver is gone; rerun the same command to resume")


def _from_record(f: ExperimentFacts) -> Verdict | None:
    """A final state on record."""
    rec = f.recorded
    if rec is None or rec.state == "running":
        return None
    if rec.state == "complete":
        return Verdict("complete", rec.note or "")
    last = next((w.last_error for w in reversed(f.workers) if w.last_error), None) or f.log_error
    if rec.state == "failed":
        code = f"exit {rec.returncode}" if rec.returncode is not None else ""
        return Verdict("failed", "; ".join(x for x in (rec.note, code, last) if x))
    return Verdict("interrupted", rec.note or "rerun the study to resume")


def _ended(f: ExperimentFacts) -> Verdict:
    """Every worker wrote its run_end and no process is on record: the pass's own verdict."""
    statuses = {w.status for w in f.workers}
    done, total = sum(w.games_done for w in f.workers), sum(w.games_total for w in f.workers)
    if statuses == {"complete"}:
        return Verdict("complete")
    if "failed" in statuses:
        last = next((w.last_error for w in reversed(f.workers) if w.last_error), None)
        return Verdict("failed", last or "a worker failed; rerun to resume")
    if "interrupted" in statuses:
        return Verdict("interrupted", f"interrupted at {done}/{total}; rerun to resume")
    errors = sum(w.progress.errors if w.progress else w.error_events for w in f.workers)
    return Verdict("failed", f"incomplete: {done}/{total} done, {errors} errored; rerun to resume")


def _stuck(w: WorkerState, now: float, window: float) -> str | None:
    """'stuck before its first unit' for a worker with a run_start, then no progress event for
    the window; else None."""
    since_start = now - w.start_time
    progressed = w.progress is not None and w.progress_time >= w.start_time
    if w.status == "running" and w.start_time and not progressed and since_start > window:
        return f"stuck before its first unit: run_start {span(since_start)} ago, no progress since"
    return None


def _worker_stall(w: WorkerState, now: float, window: float) -> str | None:
    """Why a running worker whose process lives and writes events is stalled, or None."""
    since_start = now - w.start_time if w.start_time else 0.0
    nothing_done = w.games_done <= w.base_done
    progressed = w.progress is not None and w.progress_time >= w.start_time
    retries = w.progress.retries if w.progress is not None else 0
    if nothing_done and progressed and retries > 0 and since_start > window:
        return (f"frozen at {w.games_done}/{w.games_total} done {span(since_start)} after its start, "
                f"retries climbing ({retries})")
    stuck = _stuck(w, now, window)
    if stuck is not None:
        return stuck
    if now - w.moved_time > window:
        return f"no progress for {span(now - w.moved_time)} (heartbeats only)"
    return None


def _living(f: ExperimentFacts, now: float, window: float) -> tuple[State, str]:
    """The state of an experiment whose process lives."""
    pids = _pids(f)
    stopped = [p for p in pids if f.processes.get(p) == "stopped"]
    times = [w.last_time for w in f.workers] + [f.log_mtime or 0.0]
    if f.recorded is not None:
        times.append(f.recorded.time)
    quiet = now - max(times)
    who = f"pid {', '.join(map(str, pids))}" if pids else "its process"
    if not f.workers and pass_kind_of(f.kind) is None:  # analyze: no events to judge silence by
        grew = f"; its log last grew {span(now - f.log_mtime)} ago" if f.log_mtime else ""
        return "running", f"{who} lives (an experiment of kind {f.kind} writes no progress events){grew}"
    if quiet > window:
        stuck = next((x for w in f.workers if (x := _stuck(w, now, window)) is not None), None)
        why = "no event" if f.workers else "no event since it started (loading?)"
        note = f"{stuck}, {who} lives" if stuck else f"{why} for {span(quiet)} while {who} lives"
        return "stalled", note + (" (the process is stopped: SIGSTOP?)" if stopped else "")
    for w in f.workers:
        if w.status == "running":
            stall = _worker_stall(w, now, window)
            if stall is not None:
                return "stalled", stall
    if f.workers and all(w.status != "running" for w in f.workers):
        return "running", f"its pass ended ({', '.join(sorted({w.status for w in f.workers}))}); finishing"
    return "running", ""


def _side_notes(f: ExperimentFacts, main: list[int]) -> list[str]:
    """Diagnoses besides the state: dead workers under a living driver, errors, bad lines."""
    notes = []
    for w in f.workers:
        if w.status == "running" and w.pid is not None and w.pid not in main \
                and f.processes.get(w.pid) == "gone":
            notes.append(f"worker {w.worker} ({w.gpu or 'cpu'}) died: pid {w.pid} gone, no run_end")
        elif w.status == "failed" and w.last_error:
            notes.append(f"worker {w.worker} ({w.gpu or 'cpu'}) failed: {w.last_error}")
    errors = sum(w.error_events for w in f.workers)
    if errors:
        notes.append(f"{errors} error event(s); the units that failed replay on resume")
    if f.bad_event_lines:
        notes.append(f"{f.bad_event_lines} unreadable line(s) in {EVENTS_FILE}")
    return notes


def judge(f: ExperimentFacts, now: float, window_s: float) -> Verdict:
    """The verdict on one experiment at `now`, with `window_s` seconds as the stall window."""
    verdict = _from_record(f)
    pids = _pids(f)
    if verdict is None:
        running = (f.recorded is not None and f.recorded.state == "running") or any(
            w.status == "running" for w in f.workers
        )
        if not running and f.workers:
            verdict = _ended(f)
        elif not running:
            verdict = Verdict("complete", "no progress events; judged by its outputs") if f.outputs \
                else Verdict("not started")
        elif not pids and (remote := _remote(f)) and f.recorded is None and (
                lost := _driver_gone(f, remote, now, window_s)) is not None:
            verdict = lost
        elif pids and all(f.processes.get(p) == "gone" for p in pids):
            again = "the study" if f.recorded is not None else "the same command"
            verdict = Verdict("failed", f"the process died (pid {', '.join(map(str, pids))} gone, "
                                        f"no run_end); rerun {again} to resume")
        else:
            verdict = Verdict(*_living(f, now, window_s))
    verdict.diagnoses = ([verdict.note] if verdict.note and verdict.state != "complete" else []) \
        + _side_notes(f, pids)
    if f.workers:
        verdict.done = sum(w.games_done for w in f.workers)
        verdict.total = sum(w.games_total for w in f.workers)
        etas = [e - (now - w.last_time) for w in f.workers if (e := w.eta_s()) is not None]
        if verdict.state == "running" and etas:
            verdict.eta_s = max(0.0, max(etas))
    _games_on_disk(f, verdict)
    return verdict


def _games_on_disk(f: ExperimentFacts, verdict: Verdict) -> None:
    """A games pass counts the games on disk, as every reader of the run does; a run without events
    that holds fewer games than its manifest's total is not complete."""
    if f.games_error:
        verdict.diagnoses.append(f"{GAMES_FILE} unreadable: {f.games_error}")
    if f.games is None:
        return
    verdict.done = len(f.games.lines)
    verdict.total = f.games_total if f.games_total is not None else verdict.total
    note = f.games.note()
    if note:
        verdict.diagnoses.append(f"{GAMES_FILE}: {note}")
    if verdict.state == "complete" and verdict.total is not None and verdict.done < verdict.total:
        verdict.state = "interrupted"
        verdict.note = f"{verdict.done}/{verdict.total} games on disk; rerun to resume"
        verdict.diagnoses.insert(0, verdict.note)
