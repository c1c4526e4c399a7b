"""The per-condition view (`c`) and the key help (`?`)."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.reactive import reactive
from textual.screen import ModalScreen, Screen
from textual.widgets import DataTable, Footer, Static

from harness.records import OUTCOMES
from harness.rundir.files import EVENTS_FILE
from tui.views import MonitorView

HELP = f"""\
[b]harness monitor[/b]: reads the runs' {EVENTS_FILE}, never writes.

  [b]←/→ ↑/↓[/b]  move between worker panels
  [b]c[/b]        outcomes per condition; there
           [b]Enter[/b] a condition's games, a game's rounds,
           [b]Esc[/b] back
  [b]p[/b]        pause / resume updates
  [b]?[/b]        this help      [b]q[/b]  quit

"in N": requests in flight; "avg": since start.
A panel turns red after --stall-after seconds of
STALLED (nothing written) or NO PROGRESS
(heartbeats, but no game or request done).
Times in the error log are UTC.
"""


#: Column headers short enough for 80 columns; an outcome not named here shows its own name.
SHORT_OUTCOME = {
    "bankrupt": "bankr", "stopped": "stop", "max_rounds": "max", "no_decision": "no dec", "invalid": "inval",
}


class ConditionTable(DataTable):
    """Outcome counts per condition, one row per (run, pass, condition)."""

    view: reactive[MonitorView | None] = reactive(None)

    def on_mount(self) -> None:
        self.cursor_type = "row"
        outcomes = (SHORT_OUTCOME.get(o, o) for o in OUTCOMES)
        self.add_columns("run", "pass", "condition", "games", *outcomes, "bankr%")
        self.watch_view(self.view)

    def watch_view(self, view: MonitorView | None) -> None:
        if view is None or not self.columns:
            return
        self.clear()
        for r in view.conditions:
            share = f"{100 * r.count('bankrupt') / r.games:.0f}" if r.games else "--"
            self.add_row(r.run, r.kind, r.condition, r.games, *r.counts, share,
                         key=f"{r.run}\t{r.kind}\t{r.condition}")
        if not view.conditions:
            self.add_row("", "", "no game_done events yet", "", *([""] * len(OUTCOMES)), "")


class ConditionsScreen(Screen):
    """Bankrupt and stopped games so far per condition, from game_done events."""

    BINDINGS = [
        Binding("c,escape", "app.pop_screen", "Back"),
        Binding("p", "app.toggle_pause", "Pause"),
        Binding("q", "app.quit", "Quit"),
    ]

    view: reactive[MonitorView | None] = reactive(None)

    def __init__(self, runs: dict[str, Path] | None = None) -> None:
        """`runs`: each run's label -> its directory (where Enter finds the condition's games)."""
        super().__init__()
        self.runs = runs or {}

    def compose(self) -> ComposeResult:
        with Vertical(id="conditions-box"):
            yield ConditionTable(id="conditions")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#conditions-box").border_title = "Per condition · Enter: its games"
        self.watch_view(self.view)
        self.query_one(ConditionTable).focus()  # the keys (↑ ↓ Enter) go to the table

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        """Enter on a condition: its games (the transcript browser, tui/transcript.py)."""
        from tui.transcript import GamesScreen

        if event.row_key.value is None:
            return
        run, _, condition = event.row_key.value.split("\t")
        if run in self.runs:
            self.app.push_screen(GamesScreen(self.runs[run], run, condition))

    def watch_view(self, view: MonitorView | None) -> None:
        for table in self.query(ConditionTable):
            table.view = view


class HelpScreen(ModalScreen[None]):
    """Keys, and what the panels mean."""

    BINDINGS = [Binding("escape,question_mark,q", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        yield Static(HELP, id="help")
