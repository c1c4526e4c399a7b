"""The whole-run summary: one row per run, model and pass kind (games, patching, ...)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from tui import format as fmt
from tui.views import MonitorView, SummaryRow

# (header, width, right-aligned). Run and model share what is left of the width.
FIXED = (("pass", 8, False), ("games", 13, True), ("req/s", 5, True), ("tok/s", 5, True),
         ("err/inv", 7, True), ("ETA", 6, True), ("state", 9, False))


class RunSummary(Static):
    """Totals over workers, in fixed columns that fit 80 cells; run and model get the rest."""

    view: reactive[MonitorView | None] = reactive(None)

    def watch_view(self, view: MonitorView | None) -> None:
        self._render_view()

    def on_resize(self) -> None:
        self._render_view()

    def _render_view(self) -> None:
        # Before the first layout the width is 0: render for 80 columns anyway, so the auto
        # height (one line per row, whatever the width) is right from the start.
        if self.view is not None:
            self.update(summary_text(self.view, self.size.width or 76))


def _cell(text: str, width: int, right: bool) -> str:
    if len(text) > width:
        text = text[: width - 1] + "…"
    return text.rjust(width) if right else text.ljust(width)


def summary_text(view: MonitorView, width: int) -> Text:
    """The table as text, `width` cells wide."""
    free = max(12, width - sum(w + 1 for _, w, _ in FIXED) - 1)
    run_w = max(6, free // 2)
    widths = [("run", run_w, False), ("model", free - run_w, False), *FIXED]
    out = Text(" ".join(_cell(h, w, r) for h, w, r in widths), style="bold")
    for r in view.summary:
        out.append("\n")
        out.append_text(_row(r, [w for _, w, _ in widths]))
    for run in view.waiting:
        out.append("\n" + _cell(run, run_w, False) + " ")
        out.append("waiting for events.jsonl", style="dim")
    if not view.summary and not view.waiting:
        out.append("\nno events yet", style="dim")
    return out


def _row(r: SummaryRow, widths: list[int]) -> Text:
    pct = f" {100 * r.games_done / r.games_total:3.0f}%" if r.games_total else ""
    cells = [r.run, r.model, r.kind, f"{r.games_done}/{r.games_total}{pct}", fmt.rate(r.requests_per_s),
             fmt.rate(r.tokens_per_s), f"{r.errors}/{r.invalid}", fmt.duration(r.eta_s)]
    rights = [False, False, False, True, True, True, True, True]
    text = Text(" ".join(_cell(c, w, right) for c, w, right in zip(cells, widths, rights, strict=False)) + " ")
    if r.errors:
        start = sum(w + 1 for w in widths[:6])
        text.stylize("bold red", start, start + widths[6])
    if r.stalled:
        text.append(_cell(f"{r.stalled} STALLED", widths[8], False), style="bold red")
    else:
        style = {"complete": "green", "running": ""}.get(r.status, "red")
        text.append(_cell(r.status, widths[8], False), style=style)
    return text
