"""Progress of an SAE pass: a line on stderr, and events in RUN_DIR/events.jsonl for the monitor.

The events are the run's own record types (`harness.records`) with `kind` = `features` or
`pathway`, so `harness monitor` shows an SAE pass next to the games that produced it. A "game" in
these events is one prompt read through the model.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from harness.errors import RunDirError
from harness.records import ProgressEvent, RunEndEvent, RunStartEvent
from harness.rundir.jsonl import append_record
from harness.rundir.manifest import read_manifest


class PassProgress:
    """Call with (done, total) after each batch; `finish(status)` at the end."""

    def __init__(self, run_dir: Path, kind: str, model: str, *, events: bool = True, interval_s: float = 2.0,
                 echo: bool = True, file: Path | None = None):
        # echo: the stderr line; file: where the events go instead of RUN_DIR/events.jsonl (a study
        # gives each pass its own stream)
        self.kind, self.model, self.interval_s, self.echo = kind, model, interval_s, echo
        self.file = (file or run_dir / "events.jsonl") if events else None
        try:
            manifest = read_manifest(run_dir)
        except RunDirError:
            manifest = None
        self.run_id = manifest.run_id if manifest is not None else run_dir.name
        self.started = self.last_time = time.time()
        self.last_done = self.done = self.total = 0
        self._began = False

    def _write(self, event) -> None:
        if self.file is None:
            return
        append_record(self.file, event)  # one O_APPEND write: safe beside other writers

    def __call__(self, done: int, total: int) -> None:
        now = time.time()
        self.done, self.total = done, total
        if not self._began:
            self._began = True
            self._write(RunStartEvent(time=self.started, run_id=self.run_id, kind=self.kind, model=self.model,
                                      games_total=total, pid=os.getpid()))
        if self.echo:
            print(f"\rsae {self.kind}: {done}/{total} prompts", end="" if done < total else "\n",
                  file=sys.stderr)
        if now - self.last_time >= self.interval_s or done == total:
            rate = (done - self.last_done) / max(now - self.last_time, 1e-9)
            self._write(ProgressEvent(
                time=now, run_id=self.run_id, kind=self.kind, games_done=done, games_total=total,
                requests=done, requests_per_s=rate, tokens_per_s=0.0,
                avg_requests_per_s=done / max(now - self.started, 1e-9),
            ))
            self.last_time, self.last_done = now, done

    def finish(self, status: str = "complete") -> None:
        if self._began:
            self._write(RunEndEvent(time=time.time(), run_id=self.run_id, kind=self.kind,
                                    games_done=self.done, games_total=self.total,
                                    wall_s=time.time() - self.started, status=status))


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
