"""The whole-run summary: one row per run, model and pass kind (games, patch, ...)."""

from __future__ import annotations

from rich.text import Text
from textual.reactive import reactive
from textual.widgets import Static

from harness.rundir.files import EVENTS_FILE
from tui import format as fmt
from tui.views import MonitorView, SummaryRow

# (header, width, right-aligned). Run and model share what is left of the width. The state
# comes before the rates, so a terminal narrower than 80 cells cuts the rates, not the stalls.
FIXED = (("pass", 8, False), ("games", 13, True), ("ETA", 6, True), ("state", 9, False),
         ("err/inv", 7, True), ("req/s", 5, True), ("tok/s", 5, True))


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
    for r in view.summary:
        if r.wall_s is not None:  # ended: how long it took (rates and in-flight counts are at rest)
            out.append(f"\n{r.run} {r.kind}: {r.status} after {fmt.duration(r.wall_s)} wall", style="dim")
    for run in view.waiting:
        out.append("\n" + _cell(run, run_w, False) + " ")
        out.append(f"waiting for {EVENTS_FILE}", style="dim")
    if not view.summary and not view.waiting:
        out.append("\nno events yet", style="dim")
    return out


def _row(r: SummaryRow, widths: list[int]) -> Text:
    pct = f" {100 * r.games_done / r.games_total:3.0f}%" if r.games_total else ""
    if r.stalled:
        state, state_style = f"{r.stalled} STALLED", "bold red"
    else:
        state, state_style = r.status, {"complete": "green", "running": ""}.get(r.status, "red")
    cells = [
        (r.run, ""), (r.model, ""), (r.kind, ""), (f"{r.games_done}/{r.games_total}{pct}", ""),
        (fmt.duration(r.eta_s), ""), (state, state_style),
        (f"{r.errors}/{r.invalid}", "bold red" if r.errors else ""),
        (fmt.rate(r.requests_per_s), ""), (fmt.rate(r.tokens_per_s), ""),
    ]
    rights = [False, False, *(right for _, _, right in FIXED)]
    text = Text()
    for i, ((value, style), width, right) in enumerate(zip(cells, widths, rights, strict=True)):
        text.append((" " if i else "") + _cell(value, width, right), style=style or None)
    return text
