"""Folding events into worker, run and condition state; stalls and ETAs against an explicit now."""

from __future__ import annotations

import pytest

from harness.records import OUTCOMES
from tests.tui.builders import T0, end, error, game, progress, start
from tui import format as fmt
from tui.follow import SourceBatch
from tui.state import MonitorState


def fold(*events, labels=("demo",)) -> MonitorState:
    state = MonitorState(list(labels))
    state.apply([SourceBatch(0, list(events))])
    return state


def test_progress_rates_and_gpu_figures_reach_the_worker_view():
    state = fold(start(0, total=40), progress(60, 12, total=40, gpu_memory_used_mb=2048,
                                              gpu_memory_total_mb=8192, gpu_utilization=88, retries=3))
    (w,) = state.view(T0 + 61, stall_after=120).workers
    assert (w.games_done, w.games_total, w.model, w.gpu) == (12, 40, "smollm2", "0")
    assert (w.requests_per_s, w.avg_tokens_per_s, w.retries, w.gpu_utilization) == (4.0, 100.0, 3, 88)
    assert w.eta_s == pytest.approx(28 * 60 / 12)  # 12 games in 60 s, 28 left
    assert not w.stalled and w.age_s == pytest.approx(1)


def test_stall_appears_after_the_threshold_and_not_once_finished():
    state = fold(start(0), progress(10, 3))
    assert not state.view(T0 + 130, stall_after=120).workers[0].stalled
    assert state.view(T0 + 131, stall_after=120).workers[0].stall == "silent"
    assert state.view(T0 + 131, stall_after=120).summary[0].stalled == 1
    state.apply([SourceBatch(0, [end(20, 10)])])
    w = state.view(T0 + 10_000, stall_after=120).workers[0]
    assert not w.stalled and w.status == "complete" and w.eta_s is None


def test_heartbeats_without_progress_are_a_stall_too():
    """The runner's progress task keeps writing while a hung engine answers nothing."""
    beats = [progress(t, 3, requests=24) for t in range(10, 200, 10)]
    state = fold(start(0), *beats)
    w = state.view(T0 + 191, stall_after=120).workers[0]
    assert w.stalled and w.stall == "no progress" and w.idle_s == pytest.approx(181) and w.age_s < 2
    state.apply([SourceBatch(0, [progress(200, 3, requests=25)])])  # one more answer: moving again
    assert not state.view(T0 + 201, stall_after=120).workers[0].stalled


def test_game_done_moves_the_bar_between_progress_events():
    state = fold(start(0, total=10), progress(10, 3), game(11, "g4", "fixed-none-BASE", "stopped"))
    assert state.view(T0 + 12, 120).workers[0].games_done == 4
    state = fold(start(0, total=10), progress(10, 3), game(9, "g3", "fixed-none-BASE", "stopped"))
    assert state.view(T0 + 12, 120).workers[0].games_done == 3  # older than the progress: counted there


def test_resume_restarts_the_eta_baseline():
    state = fold(start(0, total=10), progress(100, 2), end(101, 2, status="interrupted"),
                 start(1000, total=10, already=2), progress(1010, 4))
    (w,) = state.view(T0 + 1011, 120).workers
    assert w.status == "running" and w.games_done == 4
    assert w.eta_s == pytest.approx(6 * 10 / 2)  # 2 games in 10 s since the resume


def test_workers_are_keyed_by_kind_and_summed_per_model_and_kind():
    state = fold(
        start(0, worker=0, gpu="0", total=20), start(0, worker=1, gpu="1", total=20),
        progress(10, 5, worker=0, gpu="0", total=20, errors=1), progress(10, 2, worker=1, gpu="1", total=20),
        start(0, worker=0, gpu=None, total=6, kind="patch", model="smollm2"),
    )
    view = state.view(T0 + 11, 120)
    assert [(w.kind, w.worker) for w in view.workers] == [("games", 0), ("games", 1), ("patch", 0)]
    games, patch = view.summary
    shown = (games.kind, games.workers, games.games_done, games.games_total, games.errors)
    assert shown == ("games", 2, 7, 40, 1)
    assert games.requests_per_s == 8.0 and patch.games_total == 6


def test_an_older_runs_patching_events_are_the_patch_pass():
    """A run patched by an older version (events of kind "patching"), resumed by this one ("patch"):
    one worker of one pass."""
    state = fold(
        start(0, gpu=None, total=6, kind="patching"), progress(10, 2, gpu=None, total=6, kind="patching"),
        start(100, gpu=None, total=6, already=2, kind="patch"),
        progress(110, 3, gpu=None, total=6, kind="patch"),
    )
    (w,) = state.view(T0 + 111, 120).workers
    assert (w.kind, w.games_done, w.games_total, w.status) == ("patch", 3, 6, "running")
    (row,) = state.view(T0 + 111, 120).summary
    assert row.kind == "patch"


def test_conditions_count_each_game_once():
    state = fold(
        game(1, "g1", "variable-L-GMP", "bankrupt"), game(2, "g2", "variable-L-GMP", "stopped"),
        game(3, "g1", "variable-L-GMP", "bankrupt"),  # re-sent after a resume
        game(4, "g3", "fixed-none-BASE", "max_rounds"),
    )
    rows = state.view(T0, 120).conditions
    assert [(r.condition, r.games, r.counts) for r in rows] == [
        ("fixed-none-BASE", 1, (0, 0, 1, 0, 0)), ("variable-L-GMP", 2, (1, 1, 0, 0, 0))]
    assert rows[1].count("bankrupt") == 1 and rows[0].count("no_decision") == 0


def test_every_outcome_has_a_column_and_a_count():
    state = fold(game(1, "g1", "variable-L-GMP", "no_decision"), game(2, "g2", "variable-L-GMP", "invalid"))
    (row,) = state.view(T0, 120).conditions
    assert dict(zip(OUTCOMES, row.counts, strict=True)) == {
        "bankrupt": 0, "stopped": 0, "max_rounds": 0, "no_decision": 1, "invalid": 1}


def test_errors_are_logged_and_a_fatal_one_fails_the_worker():
    state = fold(start(0), error(5, "CUDA out of memory"), error(6, "engine died", fatal=True))
    view = state.view(T0 + 7, 120)
    assert [e.message for e in view.errors] == ["CUDA out of memory", "engine died"]
    assert view.workers[0].errors == 2 and view.workers[0].status == "failed"


def test_a_reset_source_forgets_what_it_said_and_malformed_lines_are_counted():
    state = MonitorState(["a", "b"])
    state.apply([SourceBatch(0, [start(0), error(1, "x")], malformed=2, last_malformed="time: bad"),
                 SourceBatch(1, [start(0, worker=3)])])
    view = state.view(T0, 120)
    assert view.malformed == 2 and "a: time: bad" == view.last_malformed and len(view.workers) == 2
    state.apply([SourceBatch(0, [start(50, total=3)], reset=True), SourceBatch(1, [], exists=False)])
    view = state.view(T0 + 51, 120)
    assert view.malformed == 0 and view.errors == () and view.waiting == ("b",)
    assert [(w.run, w.games_total) for w in view.workers] == [("a", 3), ("b", 10)]


@pytest.mark.parametrize(("seconds", "text"), [(None, "--"), (42.4, "42s"), (185, "3m05s"), (7620, "2h07m")])
def test_duration(seconds, text):
    assert fmt.duration(seconds) == text


def test_rates_and_memory_fit_small_cells():
    assert [fmt.rate(x) for x in (0.4237, 12.34, 845.2, 12_345)] == ["0.42", "12.3", "845", "12.3k"]
    assert fmt.memory(31_000, 81_920) == "30.3/80.0G" and fmt.memory(None, None) is None
    assert fmt.gpu_label(None) == "CPU" and fmt.clock_utc(0) == "00:00:00"


def test_workers_on_several_machines_are_labelled_by_machine():
    """Each machine numbers its GPUs from 0: two 'GPU 0' panels must say whose."""
    def on(ev, host, node):
        return ev.model_copy(update={"host": host, "node_id": node})

    one = fold(on(start(0), "gpu-a", "n1"), on(start(0, worker=1), "gpu-a", "n1"))
    assert [w.node for w in one.view(T0 + 1, 120).workers] == [None, None]  # one machine: no label
    hosts = fold(on(start(0), "gpu-a", "n1"), on(start(0, worker=1), "gpu-b", "n2"))
    assert [w.node for w in hosts.view(T0 + 1, 120).workers] == ["gpu-a", "gpu-b"]
    nodes = fold(on(start(0), "vm", "3f2a9c1d0e4b"), on(start(0, worker=1), "vm", "a81c77e2f0"))
    assert [w.node for w in nodes.view(T0 + 1, 120).workers] == ["3f2a9c1d", "a81c77e2"]  # nodes share a host
    assert fmt.gpu_label("0", "gpu-b") == "gpu-b GPU 0" and fmt.gpu_label(None, "gpu-b") == "gpu-b CPU"
