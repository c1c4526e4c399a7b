"""The monitor app: composes the summary, the worker panels and the error log, and follows
the runs' event files in a thread worker that posts what it read.

Only files are read, never written, so the monitor cannot disturb a run; a malformed line is
counted and shown. "Now" comes from an injected clock, so tests can make stalls appear and
snapshots stay the same from one run to the next.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from textual import work
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Footer
from textual.worker import get_current_worker

from harness.rundir.files import EVENTS_FILE
from tui.follow import RunFollower, SourceBatch
from tui.screens import ConditionsScreen, HelpScreen
from tui.state import MonitorState
from tui.study import StudyRead, StudyWatch, experiment_rows
from tui.views import MonitorView
from tui.widgets import (
    EndpointTable,
    ErrorLog,
    ExperimentGrid,
    ExperimentPanel,
    RunSummary,
    WorkerGrid,
    WorkerPanel,
)


class EventsRead(Message):
    """What one poll of the event files found (possibly nothing: the clock still moved)."""

    def __init__(self, batches: list[SourceBatch], study: StudyRead | None = None) -> None:
        super().__init__()
        self.batches = batches
        self.study = study


class MonitorApp(App[None]):
    """Live view of one or more runs, one panel per worker; or of a study, one panel per experiment."""

    CSS_PATH = "app.tcss"
    TITLE = "harness monitor"
    ENABLE_COMMAND_PALETTE = False
    AUTO_FOCUS = None  # panels come and go; the arrows pick one
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (76, "-normal"), (120, "-wide")]
    BINDINGS = [
        Binding("q", "quit", "Quit"),
        Binding("p", "toggle_pause", "Pause"),
        Binding("c", "conditions", "Conditions"),
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("left", "move(-1)", "Prev", show=False),
        Binding("right", "move(1)", "Next", show=False),
        Binding("up", "move_row(-1)", "Up", show=False),
        Binding("down", "move_row(1)", "Down", show=False),
    ]

    view: reactive[MonitorView | None] = reactive(None)
    paused: reactive[bool] = reactive(False)

    def __init__(
        self,
        runs: list[Path],
        *,
        study: Path | None = None,
        stall_after: float | None = None,
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
        follow: bool = True,
    ) -> None:
        """`study`: a study directory, watched instead of `runs` (its experiments' folders).
        `stall_after`: seconds (default 120, or the study file's stall_minutes).
        `follow=False` starts no reader thread: tests then call `poll_now()` themselves."""
        super().__init__()
        self.study = StudyWatch(study) if study is not None else None
        self.study_read = StudyRead()
        self.runs = self.study.runs() if self.study is not None else [Path(r) for r in runs]
        default = 60 * self.study.stall_minutes if self.study is not None else 120.0
        self.stall_after = stall_after if stall_after is not None else default
        self.interval = interval
        self.clock = clock
        self.follow = follow
        self.follower = RunFollower(self.runs)
        self.state = MonitorState(self.study.names if self.study is not None else run_labels(self.runs))
        self.sub_title = f"study {self.study.name}" if self.study is not None else " ".join(self.state.labels)

    def compose(self) -> ComposeResult:
        yield RunSummary(id="summary").data_bind(MonitorApp.view)
        grid = ExperimentGrid if self.study is not None else WorkerGrid
        yield grid(id="panels").data_bind(MonitorApp.view)
        yield EndpointTable(id="endpoints").data_bind(MonitorApp.view)
        yield ErrorLog(id="errors").data_bind(MonitorApp.view)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#summary").border_title = f"{self.title} · {self.sub_title}"
        self.refresh_view()
        if self.follow:
            self.follow_runs()

    @work(thread=True, exclusive=True, group="follow", name=f"follow {EVENTS_FILE}")
    def follow_runs(self) -> None:
        """Poll the files every `interval` seconds (at once again while catching up)."""
        worker = get_current_worker()
        while not worker.is_cancelled:
            more = False
            if not self.paused:
                batches = self.follower.poll()
                more = any(b.more for b in batches)
                self.post_message(EventsRead(batches, self.study.poll() if self.study is not None else None))
            if not more:
                worker.cancelled_event.wait(self.interval)

    def on_events_read(self, message: EventsRead) -> None:
        if not self.paused and self.screen_stack:  # no screens: the app is closing
            self.state.apply(message.batches)
            self.study_read = message.study or self.study_read
            self.refresh_view()

    def poll_now(self) -> None:
        """Read the files once, on this thread (for tests run with `follow=False`)."""
        self.state.apply(self.follower.poll())
        if self.study is not None:
            self.study_read = self.study.poll()
        self.refresh_view()

    def refresh_view(self) -> None:
        now = self.clock()
        view = self.state.view(now, self.stall_after)
        if self.study is not None:
            rows = experiment_rows(self.study, self.study_read, self.state.workers, now, self.stall_after)
            view = replace(view, experiments=rows, waiting=())  # the panels say "not started"
        self.view = view

    def watch_view(self, view: MonitorView | None) -> None:
        stack = self.screen_stack
        if stack and isinstance(stack[-1], ConditionsScreen):
            stack[-1].view = view

    def watch_paused(self, paused: bool) -> None:
        summary = self.query_one("#summary")
        summary.border_subtitle = "PAUSED (p resumes)" if paused else ""
        summary.set_class(paused, "-paused")

    def action_toggle_pause(self) -> None:
        self.paused = not self.paused

    def action_conditions(self) -> None:
        screen = ConditionsScreen(dict(zip(self.state.labels, self.runs, strict=False)))
        screen.set_reactive(ConditionsScreen.view, self.view)
        self.push_screen(screen)

    def action_help(self) -> None:
        self.push_screen(HelpScreen())

    def _panels(self) -> list[Widget]:
        return list(self.query(ExperimentPanel if self.study is not None else WorkerPanel))

    def action_move(self, delta: int) -> None:
        """Focus the panel `delta` places away (the first one if none has focus)."""
        panels = self._panels()
        if not panels:
            return
        current = self.focused
        i = panels.index(current) + delta if current in panels else 0
        panels[max(0, min(len(panels) - 1, i))].focus()

    def action_move_row(self, delta: int) -> None:
        columns = self.query_one("#panels").styles.grid_size_columns or 1
        self.action_move(delta * columns)


def run_labels(runs: list[Path]) -> list[str]:
    """Short names for the runs: the directory name, or the full path where names repeat."""
    names = [(r.parent if r.suffix == ".jsonl" else r).name or str(r) for r in runs]
    return [n if names.count(n) == 1 else str(r) for n, r in zip(names, runs, strict=True)]
