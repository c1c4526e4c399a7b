"""The transcript browser on a real SmolLM2 run (committed under tests/tui/data/smollm2-run: four
conditions, one game each, chat style, free answers): conditions → games → rounds, by keyboard,
snapshots of each screen, and a live run whose games appear as they are written."""

from __future__ import annotations

import shutil
from pathlib import Path

from textual.widgets import DataTable

from harness.rundir.reader import RunFiles
from tui.app import MonitorApp
from tui.transcript import GamesScreen, RoundsScreen

DATA = Path(__file__).parent / "data" / "smollm2-run"


def _run(tmp_path: Path) -> Path:
    """A copy named as the snapshot expects (the monitor shows the directory's name)."""
    run = tmp_path / "smollm2-run"
    shutil.copytree(DATA, run)
    return run


def _app(run: Path) -> MonitorApp:
    last = max(line.game.started + line.game.wall_s for line in RunFiles(DATA).games().lines)
    return MonitorApp([run], stall_after=90, clock=lambda: last + 5, follow=False)


async def _read(pilot) -> None:
    pilot.app.poll_now()
    await pilot.pause()


def test_the_conditions_screen(tmp_path, snap_compare):
    assert snap_compare(_app(_run(tmp_path)), run_before=_read, press=["c"], terminal_size=(110, 30))


def test_the_games_screen(tmp_path, snap_compare):
    assert snap_compare(_app(_run(tmp_path)), run_before=_read, press=["c", "down", "enter"],
                        terminal_size=(110, 30))


def test_the_rounds_screen(tmp_path, snap_compare):
    assert snap_compare(_app(_run(tmp_path)), run_before=_read, press=["c", "down", "enter", "enter", "down"],
                        terminal_size=(110, 40))


async def test_keys_go_in_and_back_out(tmp_path):
    run = _run(tmp_path)
    app = _app(run)
    async with app.run_test(size=(110, 40)) as pilot:
        await _read(pilot)
        await pilot.press("c", "enter")
        await pilot.pause()
        assert isinstance(app.screen, GamesScreen)
        table = app.screen.query_one(DataTable)
        assert table.row_count == 1
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, RoundsScreen)
        game = app.screen.view
        assert app.screen.query_one(DataTable).row_count == len(game.rounds)
        decided = next(i for i, r in enumerate(game.rounds) if not r.forced)
        await pilot.press(*["down"] * decided)  # the detail pane follows the highlighted round
        await pilot.pause()
        texts = " ".join(str(s.content) for s in app.screen.query("Static"))
        answer = (game.rounds[decided].response or "").strip()
        assert answer and answer[:20] in texts and (game.rounds[decided].new_prompt or "")[:20] in texts
        await pilot.press("escape", "escape")
        await pilot.pause()
        assert not isinstance(app.screen, (GamesScreen, RoundsScreen))


async def test_a_live_run_shows_games_as_they_are_written(tmp_path):
    run = _run(tmp_path)
    lines = (run / "games.jsonl").read_text().splitlines(keepends=True)
    (run / "games.jsonl").write_text("")
    condition = RunFiles(DATA).games().lines[0].game.condition.id
    screen = GamesScreen(run, "smollm2-run", condition)
    app = _app(run)
    async with app.run_test(size=(110, 30)) as pilot:
        await app.push_screen(screen)
        await pilot.pause()
        assert "no game of this condition" in str(screen.query_one(DataTable).get_row_at(0)[0])
        (run / "games.jsonl").write_text("".join(lines))
        screen.refresh_games()
        await pilot.pause()
        assert screen.query_one(DataTable).get_row_at(0)[0] == RunFiles(DATA).games().lines[0].game.game_id
