"""The monitor on a study: one panel per experiment, in the study file's order."""

from __future__ import annotations

from rich.markup import escape
from textual.containers import ScrollableContainer
from textual.reactive import reactive
from textual.widgets import ProgressBar, Static

from tui import format as fmt
from tui.views import ExperimentRow, MonitorView
from tui.widgets.panel import GridPanel, feed_panels

STATE_STYLE = {"complete": "$success", "stalled": "b $error", "failed": "b $error", "interrupted": "$warning",
               "not started": "dim"}


class ExperimentPanel(GridPanel):
    """Name, kind, state, progress, ETA, devices and the note of one experiment."""

    view: reactive[ExperimentRow | None] = reactive(None)

    def watch_view(self, v: ExperimentRow | None) -> None:
        bars = self.query_children(ProgressBar)
        if v is None or not bars:
            return  # not composed yet: on_mount calls again
        self.border_title = f"{v.name} · {v.kind}"
        self.border_subtitle = v.state
        # an experiment without progress events (analyze) fills its bar once complete
        done = 1 if v.total is None and v.state == "complete" else v.done or 0
        bars.first().update(total=max(v.total or 0, 1), progress=done)
        self.query_one(".stats", Static).update(experiment_text(v))
        self.set_class(v.state == "stalled", "-stalled")
        self.set_class(v.state == "complete", "-complete")
        self.set_class(v.state in ("failed", "interrupted"), "-failed")

    def on_mount(self) -> None:
        self.watch_view(self.view)


def experiment_text(v: ExperimentRow) -> str:
    """The panel's lines (markup): state, progress and ETA, devices, the note."""
    style = STATE_STYLE.get(v.state)
    state = f"[{style}]{v.state}[/]" if style else v.state
    done = "--" if v.total is None else f"{v.done}/{v.total}"
    pct = f" {100 * (v.done or 0) / v.total:.1f}%" if v.total else ""
    return "\n".join([
        f"{state}  [b]{done}[/b]{pct}  ETA {fmt.duration(v.eta_s)}",
        v.gpu_memory or v.devices or "--",
        escape(v.note),
    ])


class ExperimentGrid(ScrollableContainer, can_focus=False):
    """The experiments' panels, mounted once (a study's experiments are known from the start)."""

    view: reactive[MonitorView | None] = reactive(None)

    def watch_view(self, view: MonitorView | None) -> None:
        if view is None:
            return
        feed_panels(self, ExperimentPanel, view.experiments)
