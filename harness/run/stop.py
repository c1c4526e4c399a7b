"""Prompt stop on Ctrl-C or SIGTERM, for a run driven by asyncio.

The first signal tells the backend to stop decoding (`Backend.cancel`) and cancels the run's
task: the worker writes `run_end` "interrupted" and the process exits 130; games in flight are
not written and replay on resume. If that takes longer than `grace_s` (an engine slow to give
back its cancelled requests), `on_overdue` writes `run_end` itself and the process exits 130
without waiting. A second signal exits at once (130), whatever is running.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from collections.abc import Callable

EXIT_INTERRUPTED = 130
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _exit_now() -> None:
    """Exit 130 without Python's shutdown; first kill this process's multiprocessing children
    (vLLM's engine core), which would otherwise outlive it."""
    import multiprocessing

    for child in multiprocessing.active_children():
        try:
            child.kill()
        except Exception:  # noqa: BLE001, S110 - exiting anyway
            pass
    os._exit(EXIT_INTERRUPTED)


class StopOnSignal:
    """`with StopOnSignal(on_stop):` inside the task to stop. Python's own handlers come back on
    exit. Does nothing outside the main thread (a Ray actor's call): signals only reach that one."""

    def __init__(self, on_stop: Callable[[], None] = lambda: None, *, message: str | None = None,
                 on_overdue: Callable[[], None] | None = None, grace_s: float = 1.5):
        self.on_stop = on_stop
        self.on_overdue, self.grace_s = on_overdue, grace_s
        self.message = message or "harness: stopping (Ctrl-C again to quit at once)"
        self.count = 0
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum, frame) -> None:
        self.count += 1
        if self.count > 1:
            os.write(2, b"harness: stopped at once\n")
            _exit_now()
        os.write(2, (self.message + "\n").encode())  # print() may be mid-write in this thread
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._stop)
        if self.on_overdue is not None:
            timer = threading.Timer(self.grace_s, self._overdue)
            timer.daemon = True
            timer.start()

    def _overdue(self) -> None:
        """In a timer thread: the orderly stop is late; end the files' story and exit now."""
        try:
            assert self.on_overdue is not None
            self.on_overdue()
        finally:
            os.write(2, b"harness: interrupted; completed work is saved, rerun the same command to resume\n")
            _exit_now()

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
