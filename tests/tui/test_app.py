"""The app, driven headless while the test writes the event file, as a run would."""

from __future__ import annotations

from textual.widgets import DataTable, ProgressBar

from tests.tui.builders import T0, Clock, append, end, error, game, progress, start, until
from tui.app import MonitorApp
from tui.screens import ConditionsScreen, HelpScreen
from tui.widgets import ErrorLog, WorkerPanel


def panels(app: MonitorApp) -> list[WorkerPanel]:
    return list(app.query(WorkerPanel))


def bar(app: MonitorApp) -> float | None:
    """The first panel's progress bar value, once the panel is composed."""
    bars = app.query(ProgressBar)
    return bars.first().progress if bars else None


def stats(panel: WorkerPanel) -> str:
    return str(panel.query_one(".stats").content)


def ready(app: MonitorApp, n: int) -> bool:
    """`n` panels shown and drawn (a new panel is composed a moment after it is mounted)."""
    ps = panels(app)
    return len(ps) == n and all(p.border_title for p in ps)


def make_app(run, clock, **kw) -> MonitorApp:
    return MonitorApp([run], interval=0.02, clock=clock, **kw)


async def test_progress_moves_as_the_file_grows(tmp_path):
    run, clock = tmp_path / "demo", Clock(T0 + 6)
    events = run / "events.jsonl"
    app = make_app(run, clock)
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.view is not None and app.view.waiting == ("demo",))
        assert panels(app) == []
        append(events, start(0, total=10), progress(5, 5, total=10))
        await until(pilot, lambda: bar(app) == 5)
        assert "5/10" in stats(panels(app)[0])
        append(events, progress(10, 8, total=10))
        await until(pilot, lambda: bar(app) == 8)
        assert "8/10" in stats(panels(app)[0]) and app.view.waiting == ()


async def test_a_stall_appears_and_clears(tmp_path):
    run, clock = tmp_path / "demo", Clock(T0 + 20)
    append(run / "events.jsonl", start(0), progress(10, 3))
    app = make_app(run, clock, stall_after=60)
    async with app.run_test() as pilot:
        await until(pilot, lambda: ready(app, 1))
        panel = panels(app)[0]
        assert not panel.has_class("-stalled") and panel.border_subtitle == "10s ago"
        clock.now = T0 + 200  # nothing written for 190 s
        await until(pilot, lambda: panel.has_class("-stalled"))
        assert panel.border_subtitle == "STALLED 3m10s"
        append(run / "events.jsonl", progress(199, 4))
        await until(pilot, lambda: not panel.has_class("-stalled"))
        append(run / "events.jsonl", *[progress(t, 4) for t in range(210, 280, 10)])  # heartbeats only
        clock.now = T0 + 271
        await until(pilot, lambda: panel.has_class("-stalled"))
        assert panel.border_subtitle == "NO PROGRESS 1m12s"


async def test_a_torn_line_and_garbage_are_survived(tmp_path):
    run, clock = tmp_path / "demo", Clock(T0 + 12)
    events = run / "events.jsonl"
    whole = progress(10, 3).model_dump_json()
    append(events, start(0), raw=whole[:40])
    app = make_app(run, clock)
    async with app.run_test() as pilot:
        await until(pilot, lambda: ready(app, 1))
        await pilot.pause(0.1)  # several polls over the torn line
        assert app.view.malformed == 0 and app.view.workers[0].games_done == 0
        with open(events, "a") as f:
            f.write(whole[40:] + "\n{oops, half a record\n")
        await until(pilot, lambda: app.view.workers[0].games_done == 3 and app.view.malformed == 1)
        assert app.query_one(ErrorLog).border_subtitle == "1 malformed lines"
        append(events, error(11, "request timed out"))
        await until(pilot, lambda: app.query_one(ErrorLog).border_title == "Errors (1)")
        assert app.is_running


async def test_resume_and_truncation(tmp_path):
    run, clock = tmp_path / "demo", Clock(T0 + 300)
    events = run / "events.jsonl"
    append(events, start(0, total=10), progress(10, 4), end(20, 4, status="interrupted"))
    app = make_app(run, clock)
    async with app.run_test() as pilot:
        await until(pilot, lambda: ready(app, 1))
        assert app.view.workers[0].status == "interrupted" and panels(app)[0].has_class("-failed")
        assert panels(app)[0].border_subtitle == "interrupted"
        append(events, start(290, total=10, already=4), progress(295, 6))
        await until(pilot, lambda: app.view.workers[0].games_done == 6)
        assert app.view.workers[0].status == "running" and not panels(app)[0].has_class("-failed")
        events.write_text(start(299, total=3).model_dump_json() + "\n")  # a new run in the same place
        # reset first, then refilled
        await until(pilot, lambda: bool(app.view.workers) and app.view.workers[0].games_total == 3)
        assert app.view.workers[0].games_done == 0
        events.write_text(start(299, worker=5, gpu="5").model_dump_json() + "\n")  # and again, other worker
        await until(pilot, lambda: [p.id for p in panels(app) if p.display] == ["w-0-games-5"])
        append(events, start(299, worker=0, gpu="0"))  # the old worker comes back: same panel, shown again
        await until(pilot, lambda: sum(p.display for p in panels(app)) == 2)
        assert len(panels(app)) == 2


async def test_keys_pause_move_conditions_help_quit(tmp_path):
    run, clock = tmp_path / "demo", Clock(T0 + 30)
    events = run / "events.jsonl"
    append(
        events, start(0, worker=0, gpu="0"), start(0, worker=1, gpu="1"), start(0, worker=2, gpu="2"),
        game(5, "g1", "variable-L-GMP", "bankrupt"), game(6, "g2", "variable-L-GMP", "stopped"),
    )
    app = make_app(run, clock)
    async with app.run_test() as pilot:
        await until(pilot, lambda: ready(app, 3))
        await pilot.press("p")
        assert app.paused and "PAUSED" in str(app.query_one("#summary").border_subtitle)
        append(events, progress(20, 7, worker=0, gpu="0"))
        await pilot.pause(0.2)
        assert app.view.workers[0].games_done == 2  # frozen while paused
        await pilot.press("p")
        await until(pilot, lambda: app.view.workers[0].games_done == 7)

        p0, p1, p2 = panels(app)
        await pilot.press("right")
        assert app.focused is p0
        await pilot.press("right")
        assert app.focused is p1
        await pilot.press("left")
        assert app.focused is p0
        await pilot.press("down")  # two columns at 80 cells: one row down
        assert app.focused is p2

        await pilot.press("c")
        assert isinstance(app.screen, ConditionsScreen)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1 and table.get_row_at(0)[2:6] == ["variable-L-GMP", 2, 1, 1]
        append(events, game(25, "g3", "fixed-none-BASE", "bankrupt", worker=1, gpu="1"))
        await until(pilot, lambda: table.row_count == 2)  # the view updates while open
        await pilot.press("escape")
        assert not isinstance(app.screen, ConditionsScreen)

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)

        await pilot.press("q")
        await pilot.pause()
        assert not app.is_running
