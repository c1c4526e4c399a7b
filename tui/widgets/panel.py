"""One panel per worker (a GPU or a CPU process), and the scrolling grid that holds them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import ScrollableContainer
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import ProgressBar, Static

from tui import format as fmt
from tui.views import MonitorView, WorkerView


class GridPanel(Widget, can_focus=True):
    """A bordered panel of the grid: a progress bar over a few lines of text. Subclasses set
    `view` and draw it in `watch_view`."""

    # Here rather than only on the app: the scrolling grid would take the arrows for itself.
    BINDINGS = [
        Binding("left", "app.move(-1)", "Prev", show=False),
        Binding("right", "app.move(1)", "Next", show=False),
        Binding("up", "app.move_row(-1)", "Up", show=False),
        Binding("down", "app.move_row(1)", "Down", show=False),
    ]

    view: reactive[Any] = reactive(None)

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=1, show_eta=False)
        yield Static(classes="stats")


def feed_panels(
    grid: Widget, panel_type: type[GridPanel], rows: Sequence[Any]
) -> dict[str | None, GridPanel]:
    """Give each row (it has an `id`) to its panel in `grid`, mounting the panels not there yet.
    Returns the panels that were already there, by id."""
    existing = {p.id: p for p in grid.query_children(panel_type)}
    new = []
    for row in rows:
        if row.id in existing:
            existing[row.id].view = row
        else:
            panel = panel_type(id=row.id)
            panel.set_reactive(panel_type.view, row)
            new.append(panel)
    if new:
        grid.mount_all(new)
    return existing


class WorkerPanel(GridPanel):
    """Progress, rates, ETA, retries/invalid/errors and GPU figures of one worker.

    A stalled worker (running, but silent or without progress for longer than --stall-after)
    gets the `-stalled` class and says so in its border, so it stands out among busy panels.
    """

    view: reactive[WorkerView | None] = reactive(None)

    def watch_view(self, v: WorkerView | None) -> None:
        bars = self.query_children(ProgressBar)
        if v is None or not bars:
            return  # not composed yet: on_mount calls again
        title = f"{fmt.gpu_label(v.gpu, v.node)} · w{v.worker} · {v.kind}"
        self.border_title = f"{v.run} · {title}" if v.show_run else title
        bars.first().update(total=max(v.games_total, 1), progress=v.games_done)
        self.query_one(".stats", Static).update(stats_text(v))
        self.set_class(v.stalled, "-stalled")
        self.set_class(v.status == "complete", "-complete")
        self.set_class(v.status in ("failed", "interrupted", "incomplete"), "-failed")
        if v.stall == "silent":
            self.border_subtitle = f"STALLED {fmt.duration(v.age_s)}"
        elif v.stall == "no progress":
            self.border_subtitle = f"NO PROGRESS {fmt.duration(v.idle_s)}"
        elif v.status == "running":
            self.border_subtitle = f"{fmt.duration(v.age_s)} ago"
        else:
            self.border_subtitle = v.status

    def on_mount(self) -> None:
        self.watch_view(self.view)


def stats_text(v: WorkerView) -> str:
    """The panel's text lines (markup), kept under 36 cells to fit two columns at 80."""
    mem = fmt.memory(v.gpu_memory_used_mb, v.gpu_memory_total_mb)
    util = "--" if v.gpu_utilization is None else f"{v.gpu_utilization:.0f}%"
    gpu_line = (
        f"mem {mem or '--'}  util {util}"
        if mem or v.gpu_utilization is not None
        else "[dim]no GPU figures[/]"
    )
    bad = "[b $error]" if v.errors or v.invalid else ""
    return "\n".join(
        [
            f"{'games' if v.kind == 'games' else 'done'} [b]{v.games_done}/{v.games_total}[/b]"
            f"  ETA {fmt.duration(v.eta_s)}",
            f"req/s {fmt.rate(v.requests_per_s):>5} avg {fmt.rate(v.avg_requests_per_s):>5} in {v.in_flight}",
            f"tok/s {fmt.rate(v.tokens_per_s):>5} avg {fmt.rate(v.avg_tokens_per_s):>5}",
            f"retry {v.retries} empty {v.empty_retries} {bad}inval {v.invalid} "
            f"err {v.errors}{'[/]' if bad else ''}",
            gpu_line,
        ]
    )


class WorkerGrid(ScrollableContainer, can_focus=False):
    """Mounts a panel the first time a worker is seen, then feeds each panel its view."""

    view: reactive[MonitorView | None] = reactive(None)

    def watch_view(self, view: MonitorView | None) -> None:
        if view is None:
            return
        existing = feed_panels(self, WorkerPanel, view.workers)
        wanted = {w.id for w in view.workers}
        for panel_id, panel in existing.items():
            # Hidden, not removed: a truncated file may bring the same worker back a moment later.
            panel.display = panel_id in wanted
        self.set_class(not view.workers, "-empty")
