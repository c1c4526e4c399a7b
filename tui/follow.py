"""Follow growing `events.jsonl` files; no Textual here, so it is unit-testable.

The monitor must never disturb a run, so it only opens files for reading, through the run
directory's shared follower (`harness.rundir.jsonl.JsonlTail`: complete lines only, a file that
shrinks or is replaced is read again from byte 0), and reads events as a tolerant reader: fields
a newer version added are ignored, a line of a newer major version is counted as malformed with
the reason.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from harness.records import Event, SchemaVersionError, read_event
from harness.rundir.files import EVENTS_FILE
from harness.rundir.jsonl import JsonlTail, TailRead  # noqa: F401 - TailRead: part of this module's API


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
            events.append(read_event(line))
        except SchemaVersionError as e:
            bad, reason = bad + 1, str(e)
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
