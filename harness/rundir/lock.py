"""One writer per run directory: an exclusive `flock` on RUN/run.lock, held by the driver for
the life of the run.

Worker processes and Ray actors write under their driver's lock and never take it. The lock
lives in the kernel and dies with the process holding it, so a killed run never leaves a stale
lock behind; the pid written in the file only serves to name the holder in the error.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from harness.errors import RunDirError
from harness.rundir.fileops import open_nofollow
from harness.rundir.files import LOCK_FILE


class RunLock:
    """`with RunLock(run_dir):` holds the directory or raises RunDirError naming the holder."""

    def __init__(self, run_dir: str | Path, name: str = LOCK_FILE):
        # name: another lock file in the same manner (a study directory's study.lock)
        self.dir = Path(run_dir)
        self.path = self.dir / name
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = open_nofollow(self.path, os.O_RDWR | os.O_CREAT)  # no O_TRUNC: the holder's pid stays
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunDirError(
                f"{self.dir}: in use by another harness process (pid {holder}); "
                "wait for it to end or use another --out"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError as e:  # a full disk: the lock is not kept
            os.close(fd)
            raise OSError(e.errno, e.strerror, str(self.path)) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
