"""The one writer of events: game workers, SAE passes and the scheduler append their lines of an
events file through `EventWriter`, so every event carries the same stamp (time, run id, pass kind,
worker, GPU) and a stream's `run_end` is written once, whoever ends it.

A line is one small O_APPEND write (`harness.rundir.jsonl.append_record`), never fsynced: events
are a log to follow, not results (games are). That write is cheap enough to make straight from an
event loop, and safe beside other processes appending to the same file; the asyncio game worker's
thin wrapper (`harness.run.worker_run.WorkerEvents`) adds only its periodic progress task.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from pydantic import BaseModel

from harness.records import (
    ErrorEvent,
    GameDoneEvent,
    GameRecord,
    PassKind,
    ProgressEvent,
    RunEndEvent,
    RunStartEvent,
)
from harness.rundir.fileops import is_no_space
from harness.rundir.jsonl import append_record

#: How a stream of events ended (`RunEndEvent.status`).
END_STATUSES = ("complete", "incomplete", "failed", "interrupted")


class EventWriter:
    """One stream of events (one run id, pass kind and worker) appended to `path`; with `path`
    None nothing is written (a pass run with --no-events)."""

    def __init__(self, path: Path | None, *, run_id: str, kind: PassKind = "games", worker: int = 0,
                 gpu: str | None = None, node_id: str | None = None):
        self.path = Path(path) if path is not None else None
        self.run_id, self.kind, self.worker, self.gpu = run_id, kind, worker, gpu
        self.host, self.node_id = socket.gethostname(), node_id  # which machine wrote it (Ray: several)
        self._ended = threading.Lock()  # run_end once: from the stream's end, or from another thread

    def stamp(self) -> dict:
        """The fields every event of this stream carries."""
        return dict(time=time.time(), run_id=self.run_id, kind=self.kind, worker=self.worker, gpu=self.gpu,
                    host=self.host, node_id=self.node_id)

    def write(self, event: BaseModel) -> None:
        """Append the event; on a full disk it is dropped (the results' own writes say so)."""
        if self.path is None:
            return
        try:
            append_record(self.path, event)
        except OSError as e:
            if not is_no_space(e):
                raise

    def run_start(self, *, model: str, games_total: int, games_already_done: int = 0) -> None:
        self.write(RunStartEvent(
            **self.stamp(), model=model, games_total=games_total, games_already_done=games_already_done,
            resumed=games_already_done > 0, pid=os.getpid(),
        ))

    def game_done(self, record: GameRecord) -> None:
        self.write(GameDoneEvent(
            **self.stamp(), game_id=record.game_id, condition_id=record.condition.id, outcome=record.outcome,
            final_balance=record.final_balance, n_rounds=record.n_rounds, retries=record.retries,
        ))

    def progress(self, **counters) -> None:
        """A `ProgressEvent` with these counters (games_done, games_total, rates, memory...)."""
        self.write(ProgressEvent(**self.stamp(), **counters))

    def error(self, message: str, game_id: str | None = None, *, fatal: bool = False) -> None:
        self.write(ErrorEvent(**self.stamp(), message=message, game_id=game_id, fatal=fatal))

    def run_end(self, status: str, *, games_done: int, games_total: int, wall_s: float) -> bool:
        """Write the stream's `run_end`; False (nothing written) when it was already ended."""
        if not self._ended.acquire(blocking=False):
            return False
        self.write(RunEndEvent(**self.stamp(), games_done=games_done, games_total=games_total, wall_s=wall_s,
                               status=status))
        return True
