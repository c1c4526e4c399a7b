"""The state and diagnoses of `harness status` from facts and "now": one case a row, no files, no clock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.records import ErrorEvent, ProgressEvent, RunEndEvent, RunStartEvent
from harness.rundir.progress import fold_events
from harness.status.diagnose import judge, span
from harness.status.facts import ExperimentFacts, Output
from harness.study.layout import ExperimentEvent

T0 = 1_790_000_000.0
WINDOW = 60.0  # seconds


def start(t, *, pid=201, worker=0, total=10, already=0):
    return RunStartEvent(time=T0 + t, run_id="r", worker=worker, model="m", games_total=total,
                         games_already_done=already, pid=pid)


def prog(t, done, *, worker=0, total=10, requests=None, retries=0):
    return ProgressEvent(time=T0 + t, run_id="r", worker=worker, games_done=done, games_total=total,
                         requests=done * 4 if requests is None else requests, requests_per_s=1.0,
                         tokens_per_s=10.0, retries=retries)


def end(t, done, status="complete", *, worker=0, total=10):
    return RunEndEvent(time=T0 + t, run_id="r", worker=worker, games_done=done, games_total=total,
                       wall_s=t, status=status)


def record(state, *, pid=100, t=0.0, **kw):
    return ExperimentEvent(time=T0 + t, experiment="e", kind="games", state=state, pid=pid, **kw)


def facts(events=(), rec=None, processes=None, log_mtime=None, outputs=()):
    workers = [w for _, w in sorted(fold_events(events).items())]
    return ExperimentFacts(name="e", kind="games", folder=Path("e"), workers=workers, recorded=rec,
                           processes=processes or {}, log_mtime=log_mtime, outputs=list(outputs))


CASES = [
    # (what, facts, now (s after T0), state, words in the note)
    ("nothing yet", facts(), 10, "not started", ""),
    ("outputs, no events", facts(outputs=[Output("words.parquet", 10)]), 10, "complete", "outputs"),
    ("complete on record", facts([start(0), end(5, 10)], record("complete")), 99, "complete", ""),
    ("failed on record", facts([start(0)], record("failed", returncode=3, note="engine died")), 9, "failed",
     "engine died; exit 3"),
    ("interrupted on record", facts([start(0)], record("interrupted")), 9, "interrupted", "rerun the study"),
    ("running", facts([start(0), prog(20, 4)], record("running"), {100: "alive"}), 30, "running", ""),
    ("silent, process stopped", facts([start(0), prog(20, 4)], record("running"), {100: "stopped"}), 200,
     "stalled", "no event for 3.0 min while pid 100 lives (the process is stopped"),
    ("silent, log still grows", facts([start(0), prog(20, 4)], record("running"), {100: "alive"},
                                      log_mtime=T0 + 190), 200, "stalled", "no progress for 3.0 min"),
    ("loading, no event at all", facts([], record("running", t=0), {100: "alive"}), 100, "stalled",
     "no event since it started (loading?) for 1.7 min"),
    ("process died", facts([start(0), prog(20, 4)], record("running"), {100: "gone"}), 30, "failed",
     "the process died (pid 100 gone, no run_end); rerun the study to resume"),
    ("stuck before its first unit", facts([start(0)], record("running"), {100: "alive"}, log_mtime=T0 + 110),
     120, "stalled", "stuck before its first unit: run_start 2.0 min ago"),
    ("stuck and silent", facts([start(0)], record("running"), {100: "alive"}), 120, "stalled",
     "stuck before its first unit: run_start 2.0 min ago, no progress since, pid 100 lives"),
    ("frozen at 0, retries climbing",
     facts([start(0), prog(40, 0, requests=5, retries=5), prog(80, 0, requests=9, retries=9),
            prog(118, 0, requests=20, retries=20)], record("running"), {100: "alive"}), 120, "stalled",
     "frozen at 0/10 done 2.0 min after its start, retries climbing (20)"),
    ("heartbeats only", facts([start(0), prog(10, 3), prog(50, 3, requests=12), prog(118, 3, requests=12)],
                              record("running"), {100: "alive"}), 120, "stalled", "no progress for 1.8 min"),
    ("events only: complete", facts([start(0), end(5, 10)]), 99, "complete", ""),
    ("events only: interrupted", facts([start(0), end(5, 4, "interrupted")]), 99, "interrupted",
     "interrupted at 4/10"),
    ("events only: incomplete", facts([start(0), end(5, 8, "incomplete")]), 99, "failed", "incomplete: 8/10"),
    ("events only: died", facts([start(0, pid=201)], processes={201: "gone"}), 30, "failed",
     "rerun the same command to resume"),
    ("events only: alive", facts([start(0, pid=201), prog(25, 2)], processes={201: "alive"}), 30,
     "running", ""),
    ("pass ended, process finishing", facts([start(0), end(20, 10)], record("running"), {100: "alive"}), 30,
     "running", "its pass ended (complete); finishing"),
]


def test_a_kind_without_events_is_not_called_stalled_for_its_silence():
    f = facts([], record("running"), {100: "alive"}, log_mtime=T0 + 30)
    f.kind = "analyze"
    v = judge(f, T0 + 600, WINDOW)
    assert v.state == "running"
    assert v.note == ("pid 100 lives (an experiment of kind analyze writes no progress events); "
                      "its log last grew 9.5 min ago")


@pytest.mark.parametrize("what,f,now,state,note", CASES, ids=[c[0] for c in CASES])
def test_state_and_note(what, f, now, state, note):
    v = judge(f, T0 + now, WINDOW)
    assert v.state == state, v
    assert note in v.note, v.note
    if state not in ("complete", "not started") and v.note:
        assert v.diagnoses[0] == v.note


def test_a_dead_worker_under_a_living_driver_is_named():
    events = [start(0, pid=201, worker=0), start(0, pid=202, worker=1), prog(20, 2, worker=0),
              prog(20, 1, worker=1)]
    v = judge(facts(events, record("running"), {100: "alive", 201: "alive", 202: "gone"}), T0 + 30, WINDOW)
    assert v.state == "running"
    assert "worker 1 (cpu) died: pid 202 gone, no run_end" in v.diagnoses
    assert (v.done, v.total) == (3, 20)


def test_errors_and_a_fatal_one_are_reported():
    events = [start(0), prog(10, 2), ErrorEvent(time=T0 + 11, run_id="r", message="CUDA out of memory",
                                                fatal=True)]
    v = judge(facts(events), T0 + 12, WINDOW)
    assert v.state == "failed" and v.note == "CUDA out of memory"
    assert "1 error event(s); the units that failed replay on resume" in v.diagnoses


def test_eta_from_the_rate_since_the_restart():
    # resumed with 4 done; 3 more in 30 s: 3 left take 30 s, 10 s of which passed since the last event
    f = facts([start(0, already=4), prog(30, 7)], record("running"), {100: "alive"})
    v = judge(f, T0 + 40, WINDOW)
    assert v.state == "running" and v.eta_s == pytest.approx(20.0)
    assert judge(facts([start(0), end(5, 10)]), T0 + 9, WINDOW).eta_s is None


@pytest.mark.parametrize("seconds,text", [(42, "42 s"), (210, "3.5 min"), (7560, "2.1 h")])
def test_span(seconds, text):
    assert span(seconds) == text


def remote_start(t, *, worker, pid, host="node-b"):
    return start(t, worker=worker, pid=pid).model_copy(update={"host": host, "node_id": f"n-{host}"})


def test_a_ray_worker_on_another_machine_is_judged_by_its_heartbeats_not_the_local_proc():
    """Its pid means nothing here (no entry in `processes`, which holds this machine's only)."""
    events = [remote_start(0, worker=0, pid=201), prog(20, 4)]
    fresh = judge(facts(events), T0 + 30, WINDOW)
    assert fresh.state == "running"
    lost = judge(facts(events), T0 + 200, WINDOW)
    assert lost.state == "failed"
    assert "no event for 3.0 min from worker 0 on node-b" in lost.note and "driver is gone" in lost.note
    with_driver = facts(events)
    with_driver.driver_pid = 4242  # the driver holds run.lock on this machine: silence is a stall
    assert judge(with_driver, T0 + 200, WINDOW).state == "stalled"
    ended = judge(facts([*events, end(40, 4, "interrupted")]), T0 + 200, WINDOW)
    assert ended.state == "interrupted"


def test_the_holder_of_a_run_lock_from_the_kernels_table(tmp_path):
    from harness.rundir.lock import RunLock
    from harness.status.facts import lock_holder

    lock = tmp_path / "run.lock"
    assert lock_holder(lock) is None  # no file
    with RunLock(tmp_path):
        assert lock_holder(lock) == os.getpid()
    assert lock_holder(lock) is None  # released
    st = lock.stat()
    table = tmp_path / "locks"
    device = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    table.write_text(f"1: FLOCK  ADVISORY  WRITE 77 {device} 0 EOF\n"
                     f"1: -> FLOCK  ADVISORY  WRITE 78 {device} 0 EOF\n")
    assert lock_holder(lock, table) == 77  # the waiter (->) is not the holder
