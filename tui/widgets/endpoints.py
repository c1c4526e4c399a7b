"""Per-endpoint figures of runs on the openai backend (hidden for in-process engines): requests in
flight, requests/s, tokens/s, transport retries, 429s, latency p50 / p95, and whether it rests."""

from __future__ import annotations

from rich.table import Table
from textual.reactive import reactive
from textual.widgets import Static

from harness.status.render import ENDPOINT_HEADER, endpoint_row
from tui.views import MonitorView


class EndpointTable(Static):
    """One row per (run, endpoint URL), summed over the run's workers."""

    view: reactive[MonitorView | None] = reactive(None)

    def on_mount(self) -> None:
        self.border_title = "Endpoints"
        self.watch_view(self.view)

    def watch_view(self, view: MonitorView | None) -> None:
        self.display = bool(view and view.endpoints)
        if view is None or not view.endpoints:
            return
        several = len({run for run, _ in view.endpoints}) > 1
        table = Table(box=None, pad_edge=False, expand=True)
        for name in (["run"] if several else []) + ENDPOINT_HEADER:
            table.add_column(name, justify="left" if name in ("run", "endpoint", "resting") else "right",
                             no_wrap=True)
        for run, stats in view.endpoints:
            row = endpoint_row(stats)
            table.add_row(*([run] if several else []), *row, style="yellow" if stats.resting else None)
        self.update(table)
