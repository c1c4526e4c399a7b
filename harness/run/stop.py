"""Prompt stop on Ctrl-C or SIGTERM, for a run driven by asyncio.

The first signal tells the backend to stop decoding (`Backend.cancel`) and cancels the run's
task: the worker writes `run_end` "interrupted" and the process exits 130; games in flight are
not written and replay on resume. A second signal exits at once (130), whatever is running.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

EXIT_INTERRUPTED = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopOnSignal:
    """`with StopOnSignal(on_stop):` inside the task to stop. Python's own handlers come back on
    exit. Does nothing outside the main thread (a Ray actor's call): signals only reach that one."""

    def __init__(self, on_stop: Callable[[], None] = lambda: None, *, message: str | None = None):
        self.on_stop = on_stop
        self.message = message or "harness: stopping (Ctrl-C again to quit at once)"
        self.count = 0
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.count > 1:
            os.write(2, b"harness: stopped at once\n")
            os._exit(EXIT_INTERRUPTED)
        os.write(2, (self.message + "\n").encode())  # print() may be mid-write in this thread
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._stop)

    def _stop(self) -> None:
        try:
            self.on_stop()
        finally:
            if self._task is not None:
                self._task.cancel()

    def __enter__(self) -> StopOnSignal:
        self._task = asyncio.current_task()
        self._loop = asyncio.get_running_loop()
        try:
            for sig in STOP_SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        except ValueError:  # not the main thread
            self._previous.clear()
        return self

    def __exit__(self, *exc) -> None:
        if self.count:
            return  # stopping: a second signal must still exit at once, until the process ends
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)  # type: ignore[arg-type]
        self._previous.clear()
