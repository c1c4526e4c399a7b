"""The log pane: the latest ErrorEvents, newest last, and how many lines could not be read."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import RichLog

from tui import format as fmt
from tui.views import MonitorView


class ErrorLog(RichLog, can_focus=False):
    """Rewritten whenever the error list or the malformed count changes (the list is short)."""

    view: reactive[MonitorView | None] = reactive(None)

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=500, wrap=False, markup=False, min_width=40, **kwargs)
        self._shown: tuple | None = None

    def on_mount(self) -> None:
        self.border_title = "Errors"
        self.watch_view(self.view)

    def watch_view(self, view: MonitorView | None) -> None:
        if view is None:
            return
        shown = (view.errors, view.malformed, view.last_malformed, view.read_errors)
        if shown == self._shown:
            return
        self._shown = shown
        self.border_title = f"Errors ({len(view.errors)})"
        self.border_subtitle = f"{view.malformed} malformed lines" if view.malformed else ""
        self.clear()
        if not (view.errors or view.malformed or view.read_errors):
            self.write(Text("no errors", style="dim"))
        for why in view.read_errors:
            self.write(Text(f"cannot read {why}", style="yellow"))
        if view.malformed:
            self.write(Text(
                f"skipped {view.malformed} malformed line(s); last: {view.last_malformed}", style="yellow"
            ))
        for e in view.errors:
            line = Text(f"{fmt.clock_utc(e.time)} ", style="dim")
            line.append(f"{e.run} {fmt.gpu_label(e.gpu)} w{e.worker} ", style="bold")
            line.append(
                ("FATAL " if e.fatal else "") + e.message.replace("\n", " "), style="red" if e.fatal else ""
            )
            self.write(line)
