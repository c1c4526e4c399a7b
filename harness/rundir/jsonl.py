"""JSON Lines on disk, the one copy of each mechanism: append, torn-tail repair, complete-line
reading, and following a growing file.

A line is one `write` on a file opened with O_APPEND, so several processes can append to one
file without interleaving their lines. A process killed mid-write leaves a torn last line (no
trailing newline): readers skip it, a resume cuts it off (`repair_torn_tail`), and a driver whose
worker died ends it (`close_torn_line`) so the next record starts a line of its own.

Durability: "flush" hands each line to the kernel (safe against a killed process); "fsync" also
waits until it is on the disk (safe against a crash of the machine or a lost network mount).

Files are written only by name, never through a symbolic link (`harness.rundir.fileops`).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from harness.rundir.fileops import open_nofollow, write_all

Durability = Literal["fsync", "flush"]
SEAM_BYTES = 4096  # more than one event line, so a rewritten last line is noticed


def append_line(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Append `data` (one or more whole lines) with one O_APPEND write; fsync when asked."""
    fd = open_nofollow(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        write_all(fd, data, path, fsync=fsync)
    finally:
        os.close(fd)


def append_record(path: Path, record: BaseModel, *, fsync: bool = False) -> None:
    """One pydantic record as one line."""
    append_line(path, (record.model_dump_json() + "\n").encode(), fsync=fsync)


class JsonlAppender:
    """An open file records are appended to from asyncio, one line per record. With
    durability "fsync" a record's `write` returns only once the line is on the disk."""

    def __init__(self, path: Path, durability: Durability = "flush"):
        self.path = Path(path)
        self.fsync = durability == "fsync"
        self._fd: int | None = None

    async def open(self) -> JsonlAppender:
        self._fd = open_nofollow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        return self

    def _write(self, data: bytes) -> None:
        assert self._fd is not None, "open() first"
        write_all(self._fd, data, self.path, fsync=self.fsync)

    async def write(self, record: BaseModel) -> None:
        data = (record.model_dump_json() + "\n").encode()
        if self.fsync:  # the disk wait runs off the event loop
            await asyncio.to_thread(self._write, data)
        else:
            self._write(data)

    async def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def repair_torn_tail(path: Path) -> int:
    """Cut a partial last line (no trailing newline). Returns the bytes removed."""
    try:
        fd = open_nofollow(path, os.O_RDWR)
    except FileNotFoundError:
        return 0
    with os.fdopen(fd, "rb+") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return 0
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return 0
        pos, keep = size, 0
        while pos > 0:  # scan back in blocks for the last newline
            step = min(65536, pos)
            f.seek(pos - step)
            nl = f.read(step).rfind(b"\n")
            if nl >= 0:
                keep = pos - step + nl + 1
                break
            pos -= step
        f.truncate(keep)
        return size - keep


def close_torn_line(path: Path) -> bool:
    """End a line a killed writer left half-written, so the next record starts a line of its
    own. Only when the tail stays unchanged for a moment (not a survivor mid-write)."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    size = path.stat().st_size
    with open(path, "rb") as f:
        f.seek(size - 1)
        if f.read(1) == b"\n":
            return False
    time.sleep(0.05)
    if path.stat().st_size != size:
        return False
    append_line(path, b"\n")
    return True


def complete_lines(path: Path) -> Iterator[bytes | None]:
    """Each line of the file in order; None for a torn last line (no newline yet). Nothing
    when the file does not exist."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        for line in f:
            yield line if line.endswith(b"\n") else None


@dataclass
class TailRead:
    """What one poll of one file found."""

    lines: list[bytes] = field(default_factory=list)
    exists: bool = True
    reset: bool = False
    """The file shrank or was replaced, so reading started over at byte 0."""
    more: bool = False
    """`max_lines` were read; more may be waiting."""
    error: str | None = None
    """Why the file could not be read (permissions, I/O); the next poll tries again."""


class JsonlTail:
    """One growing file followed by byte offset, for readers that must never disturb a writer.

    Only whole lines (ending in a newline) advance the offset: a torn last line is read on a
    later poll once its newline lands. A missing file is simply empty; one that shrinks, is
    replaced (another inode) or is rewritten in place (the bytes just before the offset differ)
    is read again from byte 0 (`reset`).
    """

    def __init__(self, path: Path, *, max_lines: int = 5_000, from_end: bool = False) -> None:
        self.path = Path(path)
        self.offset = 0
        self.max_lines = max_lines
        self._identity: tuple[int, int] | None = None
        self._seam = b""  # the last bytes before `offset`, to notice a file rewritten in place
        if from_end and self.path.exists():
            self.offset = self.path.stat().st_size

    def read(self) -> TailRead:
        """New complete lines since the last call (at most `max_lines`; call again for more)."""
        try:
            return self._read()
        except (FileNotFoundError, NotADirectoryError):
            return TailRead(exists=False)
        except OSError as e:
            return TailRead(error=f"{self.path}: {e.strerror or e}")

    def _read(self) -> TailRead:
        with open(self.path, "rb") as f:
            st = os.fstat(f.fileno())
            identity = (st.st_dev, st.st_ino)
            reset = False
            pos = self.offset
            if st.st_size < pos or (self._identity is not None and identity != self._identity):
                pos, reset = 0, True
            elif pos and self._seam:
                # Rewritten in place to the same size or longer: the bytes before the offset changed.
                f.seek(pos - len(self._seam))
                if f.read(len(self._seam)) != self._seam:
                    pos, reset = 0, True
            f.seek(pos)
            consumed: list[bytes] = []
            while len(consumed) < self.max_lines:
                line = f.readline()
                if not line.endswith(b"\n"):
                    break  # EOF, or a torn line still being written
                consumed.append(line)
        # Committed only once all reads succeeded, so an I/O error loses no lines.
        if consumed or reset:
            self._seam = (b"" if reset else self._seam) + b"".join(consumed[-SEAM_BYTES:])
            self._seam = self._seam[-SEAM_BYTES:]
        self.offset = pos + sum(len(line) for line in consumed)
        self._identity = identity
        lines = [line for line in consumed if line.strip()]
        return TailRead(lines=lines, reset=reset, more=len(consumed) >= self.max_lines)
