"""Follow growing `events.jsonl` files by byte offset; no Textual here, so it is unit-testable.

The monitor must never disturb a run, so it only opens files for reading and keeps its own
offset. It hands out complete lines only: a writer may be mid-line (a torn last line), and that
line is read on a later poll once its newline lands. A file that does not exist yet is simply
empty; one that shrinks, is replaced (another inode) or is rewritten in place (the bytes just
before the offset differ) is read again from byte 0.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from harness.records import EVENT_ADAPTER, Event

EVENTS_FILE = "events.jsonl"
SEAM_BYTES = 4096  # more than one event line, so a rewritten last line is noticed


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
    """One file followed by byte offset. Only whole lines (ending in a newline) advance it."""

    def __init__(self, path: Path, *, max_lines: int = 5_000) -> None:
        self.path = Path(path)
        self.offset = 0
        self.max_lines = max_lines
        self._identity: tuple[int, int] | None = None
        self._seam = b""  # the last bytes before `offset`, to notice a file rewritten in place

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


@dataclass
class SourceBatch:
    """Parsed events of one run directory from one poll."""

    source: int
    events: list[Event] = field(default_factory=list)
    malformed: int = 0
    last_malformed: str | None = None
    exists: bool = True
    reset: bool = False
    more: bool = False
    error: str | None = None


def parse_lines(lines: list[bytes]) -> tuple[list[Event], int, str | None]:
    """Validate lines as events. A bad line is counted (with a short reason), never raised."""
    events: list[Event] = []
    bad, reason = 0, None
    for line in lines:
        try:
            events.append(EVENT_ADAPTER.validate_json(line))
        except ValidationError as e:
            bad += 1
            err = e.errors()[0] if e.errors() else {"msg": str(e)}
            loc = ".".join(str(p) for p in err.get("loc", ()))
            reason = f"{loc}: {err['msg']}" if loc else str(err["msg"])
        except ValueError as e:  # e.g. bytes that are not UTF-8
            bad, reason = bad + 1, str(e)
    return events, bad, reason


def events_path(run: Path) -> Path:
    """A run directory's event file; a path to a `.jsonl` file is taken as is."""
    run = Path(run)
    return run if run.suffix == ".jsonl" else run / EVENTS_FILE


class RunFollower:
    """Follows several runs' event files. `poll()` is safe to call from a worker thread."""

    def __init__(self, runs: list[Path]) -> None:
        self.runs = [Path(r) for r in runs]
        self.tails = [JsonlTail(events_path(r)) for r in self.runs]
        self._lock = threading.Lock()

    def poll(self) -> list[SourceBatch]:
        """One batch per run, in the order the runs were given."""
        with self._lock:
            batches = []
            for i, tail in enumerate(self.tails):
                read = tail.read()
                events, bad, reason = parse_lines(read.lines)
                batches.append(SourceBatch(
                    i, events, bad, reason, exists=read.exists, reset=read.reset, more=read.more,
                    error=read.error,
                ))
            return batches
