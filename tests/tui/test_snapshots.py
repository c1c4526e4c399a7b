"""Snapshots of the main screens. The clock is fixed and the app reads the files once
(`follow=False`, `poll_now()`), so each picture is the same on every run.

Update after an intended change with `pytest tests/tui --snapshot-update`, and look at the SVGs.
"""

from __future__ import annotations

import pytest

from tests.tui.builders import T0, append, busy_run, game, progress, start
from tui.app import MonitorApp


def app_for(*runs, now: float = T0 + 130) -> MonitorApp:
    # stall_after=90 at T0+130: GPU 1 (last event at +30) is stalled, the others are not.
    return MonitorApp(list(runs), stall_after=90, clock=lambda: now, follow=False)


async def read_once(pilot) -> None:
    pilot.app.poll_now()
    await pilot.pause()


@pytest.fixture
def busy(tmp_path):
    run = tmp_path / "demo"
    busy_run(run / "events.jsonl")
    with open(run / "events.jsonl", "a") as f:
        f.write("{torn and garbled\n")
    return run


def test_main_screen(busy, snap_compare):
    """Two GPU panels (GPU 1 stalled), a CPU patching panel, the summary, one error, one bad line."""
    assert snap_compare(app_for(busy), run_before=read_once)


def test_focus_moves_to_the_second_panel(busy, snap_compare):
    assert snap_compare(app_for(busy), run_before=read_once, press=["right", "right"])


def test_conditions_view(busy, snap_compare):
    assert snap_compare(app_for(busy), run_before=read_once, press=["c"])


def test_help(busy, snap_compare):
    assert snap_compare(app_for(busy), run_before=read_once, press=["question_mark"])


def test_paused(busy, snap_compare):
    assert snap_compare(app_for(busy), run_before=read_once, press=["p"])


def test_wide_terminal_shows_three_columns(tmp_path, snap_compare):
    run = tmp_path / "big"
    for w in range(4):
        append(run / "events.jsonl", start(0, worker=w, gpu=str(w), total=50),
               progress(100, 10 + 5 * w, worker=w, gpu=str(w), total=50, gpu_utilization=90 + w,
                        gpu_memory_used_mb=40_000, gpu_memory_total_mb=81_920))
    append(run / "events.jsonl", game(101, "g1", "fixed-W-MHW", "bankrupt", worker=3, gpu="3"))
    assert snap_compare(app_for(run, now=T0 + 110), run_before=read_once, terminal_size=(130, 30))


def test_waiting_for_a_run_that_has_not_started(tmp_path, snap_compare):
    assert snap_compare(app_for(tmp_path / "not-yet"), run_before=read_once)


def test_two_runs_name_their_panels(busy, tmp_path, snap_compare):
    other = tmp_path / "gemma"
    append(
        other / "events.jsonl", start(0, model="gemma-2-9b", total=8), progress(120, 1, total=8, requests=24)
    )
    assert snap_compare(app_for(other, busy, tmp_path / "later"), run_before=read_once)


def test_narrow_terminal_shows_one_column(busy, snap_compare):
    assert snap_compare(app_for(busy), run_before=read_once, terminal_size=(60, 24))


def test_study_screen(tmp_path, snap_compare):
    """A study: one panel per experiment (complete; silent for 100 s with a 90 s window: stalled; not
    started, waiting for its inputs)."""
    from harness.study.layout import ExperimentEvent, StudyDir
    from tests.tui.builders import end
    from tests.tui.test_study import STUDY_TOML

    study = StudyDir(tmp_path / "study")
    study.path.mkdir()
    study.study_file.write_text(STUDY_TOML.replace("stall_minutes = 1", "stall_minutes = 1.5"))
    for name, state in (("games-a", "complete"), ("games-b", "running")):
        gpu = "cuda:1" if name == "games-b" else "cuda:0"
        study.append(ExperimentEvent(time=T0, experiment=name, kind="games", state=state, devices=[gpu]))
    append(study.experiment_dir("games-a") / "events.jsonl", start(0, gpu="0"), end(60, 10, gpu="0"))
    append(study.experiment_dir("games-b") / "events.jsonl", start(0, gpu="1", total=128),
           progress(30, 6, gpu="1", total=128, gpu_memory_used_mb=62_000, gpu_memory_total_mb=81_920))
    app = MonitorApp([], study=study.path, clock=lambda: T0 + 130, follow=False)
    assert snap_compare(app, run_before=read_once)
