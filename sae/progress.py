"""Progress of an SAE pass: events in RUN_DIR/events.jsonl for the monitor (and the command's line
on stderr).

The events are the run's own record types (`harness.records`) with `kind` = `features` or
`pathway`, so `harness monitor` shows an SAE pass next to the games that produced it. A "game" in
these events is one prompt read through the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import RunDirError
from harness.records import PassKind
from harness.rundir.events import EventWriter
from harness.rundir.files import EVENTS_FILE
from harness.rundir.manifest import read_manifest


class PassProgress:
    """Call with (done, total) after each batch; `finish(status)` at the end. Events go through
    the one event writer; `display(done, total)` is the command's terminal line
    (`harness.commands.console.PassLine`), if any."""

    def __init__(self, run_dir: Path, kind: PassKind, model: str, *, events: bool = True,
                 interval_s: float = 2.0, display: Callable[[int, int], None] | None = None,
                 file: Path | None = None):
        # file: where the events go instead of RUN_DIR/events.jsonl (a study gives each pass its own stream)
        self.model, self.interval_s, self.display = model, interval_s, display
        try:
            manifest = read_manifest(run_dir)
        except RunDirError:
            manifest = None
        run_id = manifest.run_id if manifest is not None else run_dir.name
        path = (file or run_dir / EVENTS_FILE) if events else None
        self.events = EventWriter(path, run_id=run_id, kind=kind)
        self.started = self.last_time = time.time()
        self.last_done = self.done = self.total = 0
        self._began = False

    @property
    def kind(self) -> str:
        return self.events.kind

    def __call__(self, done: int, total: int) -> None:
        now = time.time()
        self.done, self.total = done, total
        if not self._began:
            self._began = True
            self.events.run_start(model=self.model, games_total=total)
        if self.display is not None:
            self.display(done, total)
        if now - self.last_time >= self.interval_s or done == total:
            rate = (done - self.last_done) / max(now - self.last_time, 1e-9)
            self.events.progress(
                games_done=done, games_total=total, requests=done, requests_per_s=rate, tokens_per_s=0.0,
                avg_requests_per_s=done / max(now - self.started, 1e-9),
            )
            self.last_time, self.last_done = now, done

    def finish(self, status: str = "complete") -> None:
        if self._began:
            self.events.run_end(status, games_done=self.done, games_total=self.total,
                                wall_s=time.time() - self.started)


@contextmanager
def finishing(report: PassProgress) -> Iterator[PassProgress]:
    """Run a pass inside this block: its run_end event says how it ended (complete, interrupted, failed)."""
    status = "failed"
    try:
        yield report
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        report.finish(status)
