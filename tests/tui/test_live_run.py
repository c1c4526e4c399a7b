"""The monitor following a real run: `harness run games` (scripted backend, two CPU worker
processes) writes events.jsonl while the app reads it."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

from harness.records import GAME_ADAPTER, OUTCOMES
from tests.tui.builders import until
from tui.app import MonitorApp
from tui.widgets import WorkerPanel

LIVE_TOML = """
seed = 3
repetitions = 3
concurrency = 1
progress_interval_s = 0.2

[model]
name = "scripted-demo"
path = "embedded:smollm2-135m-instruct"
style = "base"

[game]
max_rounds = 4

[conditions]
ids = ["fixed-L-BASE", "variable-W-GMP"]

[backend]
kind = "scripted"
script = ["Final Decision: Bet $40", "Final Decision: Bet $40", "Final Decision: Stop"]
script_delay_s = 0.2
"""


async def test_follows_a_live_run_per_worker(tmp_path):
    config, out = tmp_path / "live.toml", tmp_path / "run"
    config.write_text(LIVE_TOML)
    app = MonitorApp([out], interval=0.05)  # real clock: the events carry real times
    seen_done: set[int] = set()

    def finished() -> bool:
        view = app.view
        if view is None or not view.workers:
            return False
        seen_done.add(sum(w.games_done for w in view.workers))
        return len(view.workers) == 2 and all(w.status == "complete" for w in view.workers)

    async with app.run_test() as pilot:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "harness", "run", "games", "--config", str(config), "--out", str(out),
            "--workers", "2", "--quiet",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )
        try:
            await until(pilot, finished, timeout=120)
        finally:
            _, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()[-2000:]

        def drawn() -> bool:
            panels = list(app.query(WorkerPanel))
            return len(panels) == 2 and all(p.border_title for p in panels)

        await until(pilot, drawn)

        view = app.view
        assert [(w.kind, w.worker, w.gpu, w.games_done, w.games_total) for w in view.workers] == [
            ("games", 0, None, 3, 3), ("games", 1, None, 3, 3)]
        assert any(0 < d < 6 for d in seen_done), seen_done  # it moved while we watched
        (summary,) = view.summary
        assert (summary.model, summary.games_done, summary.games_total, summary.status) == (
            "scripted-demo", 6, 6, "complete")
        games = [GAME_ADAPTER.validate_json(line) for line in (out / "games.jsonl").read_text().splitlines()]
        expected = Counter((g.condition.id, g.outcome) for g in games)
        shown = Counter()
        for r in view.conditions:
            shown.update({(r.condition, outcome): r.count(outcome) for outcome in OUTCOMES})
        assert +shown == expected
        titles = sorted(str(p.border_title) for p in app.query(WorkerPanel))
        assert titles == ["CPU · w0 · games", "CPU · w1 · games"]
        assert view.malformed == 0 and view.errors == (), view.errors
