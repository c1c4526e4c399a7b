"""The transcript browser: from the per-condition table, Enter opens the condition's games; Enter
on a game opens its rounds, each with the part of its prompt new to that round (the whole prompt
collapsed below), the answer, parse kind, decision, bet, result, balance, re-asks and the decision
step. Escape goes back. The games come from games.jsonl through the run reader
(`harness.rundir.reader`), read again when the file grows, so a live run's new games appear."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Collapsible, DataTable, Footer, Static

from harness import transcript
from harness.commands.show import round_line
from harness.records import GameRecord
from harness.rundir.reader import RunFiles

#: How often a screen looks whether games.jsonl grew (seconds).
REFRESH_S = 2.0


class _GamesFile:
    """games.jsonl of one run, read again only when its size changed."""

    def __init__(self, run: Path):
        self.files = RunFiles(run)
        self.size = -1
        self.games: list[GameRecord] = []

    def read(self) -> bool:
        """Whether there is something new."""
        try:
            size = self.files.games_path.stat().st_size
        except OSError:
            size = 0
        if size == self.size:
            return False
        self.size = size
        self.games = [line.game for line in self.files.games().lines] if size else []
        return True


class GamesScreen(Screen):
    """One condition's games: outcome, rounds, final balance, re-asks."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("q", "app.quit", "Quit")]

    def __init__(self, run: Path, label: str, condition: str) -> None:
        super().__init__()
        self.run, self.label, self.condition = run, label, condition
        self.source = _GamesFile(run)

    def compose(self) -> ComposeResult:
        with Vertical(id="games-box"):
            yield DataTable(id="games", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#games-box").border_title = f"{self.label} · {self.condition} · Enter: rounds"
        table = self.query_one(DataTable)
        table.add_columns("game", "rep", "outcome", "rounds", "final balance", "re-asks")
        self.refresh_games()
        self.set_interval(REFRESH_S, self.refresh_games)
        table.focus()

    def refresh_games(self) -> None:
        if not self.source.read():
            return
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for g in transcript.condition_games(self.source.games, self.condition):
            table.add_row(g.game_id, g.repetition, g.outcome, g.rounds, f"${g.final_balance}", g.retries,
                          key=g.game_id)
        if not table.row_count:
            table.add_row("no game of this condition finished yet", "", "", "", "", "")
        table.move_cursor(row=min(row, max(table.row_count - 1, 0)))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        game_id = event.row_key.value
        game = next((g for g in self.source.games if g.game_id == game_id), None)
        if game is not None:
            self.app.push_screen(RoundsScreen(self.label, game))


class RoundsScreen(Screen):
    """A game's rounds; the highlighted round in full below."""

    BINDINGS = [Binding("escape", "app.pop_screen", "Back"), Binding("q", "app.quit", "Quit")]

    def __init__(self, label: str, game: GameRecord) -> None:
        super().__init__()
        self.label = label
        self.view = transcript.game_view(game)

    def compose(self) -> ComposeResult:
        with Vertical(id="rounds-box"):
            yield DataTable(id="rounds", cursor_type="row")
        yield VerticalScroll(id="round-detail")
        yield Footer()

    def on_mount(self) -> None:
        g = self.view.game
        self.query_one("#rounds-box").border_title = (
            f"{self.label} · {g.game_id} · {g.outcome}, {g.rounds} rounds, final ${g.final_balance}")
        table = self.query_one(DataTable)
        table.add_columns("round", "decision", "parse kind", "result", "balance", "re-asks")
        for r in self.view.rounds:
            decision = ("forced $" + str(r.bet)) if r.forced else (
                f"Bet ${r.bet}" if r.decision == "bet" else (r.decision or "none"))
            result = "" if r.win is None else ("WIN" if r.win else "LOSS")
            table.add_row(r.round, decision, r.parse_kind or "", result,
                          f"${r.balance_before} → ${r.balance_after}", r.retries + r.transport_retries)
        self.show_round(0)
        table.focus()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_round(event.cursor_row)

    def show_round(self, index: int) -> None:
        if not self.view.rounds:
            return
        r = self.view.rounds[min(index, len(self.view.rounds) - 1)]
        detail = self.query_one("#round-detail", VerticalScroll)
        detail.remove_children()
        parts: list = [Static(round_line(r), markup=False, classes="round-title")]
        if r.forced:
            parts.append(Static("The opening round, forced: no model call."))
        else:
            parts += [
                Collapsible(Static(r.new_prompt or "", markup=False), title="New in this round's prompt",
                            collapsed=False),
                Collapsible(Static(r.prompt or "", markup=False), title="Whole prompt", collapsed=True),
                Static(f"Answer ({r.parse_kind}, finish {r.finish_reason}, seed {r.seed}):", markup=False,
                       classes="label"),
                Static((r.response or "").strip() or "(empty)", markup=False, classes="answer"),
            ]
            if r.extract_prompt is not None:
                step = "Follow-up turn" if r.parse_kind == "follow_up" else "Decision step"
                parts += [
                    Collapsible(Static(r.extract_prompt, markup=False), title=f"{step}: prompt",
                                collapsed=True),
                    Static(f"{step}: answer", classes="label"),
                    Static((r.extract_response or "(no answer)").strip(), markup=False, classes="answer"),
                ]
        detail.mount_all(parts)
