"""Follow growing `events.jsonl` files, and each run's `games.jsonl`; no Textual here, so it is
unit-testable.

The monitor must never disturb a run, so it only opens files for reading, through the run
directory's shared follower (`harness.rundir.jsonl.JsonlTail`: complete lines only, a file that
shrinks or is replaced is read again from byte 0), and reads events as a tolerant reader: fields
a newer version added are ignored, a line of a newer major version is counted as malformed with
the reason. Games are read line by line under the one policy of every reader of a run
(`harness.rundir.reader`): a torn tail waits for its newline, a game glued to a dead worker's
fragment is recovered, an unreadable line is counted, and the state keeps a game's first copy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from harness.records import Event, SchemaVersionError, read_event
from harness.rundir.files import EVENTS_FILE, GAMES_FILE
from harness.rundir.jsonl import JsonlTail, TailRead  # noqa: F401 - TailRead: part of this module's API
from harness.rundir.reader import parse_game_line


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
    games: list[GameSummary] = field(default_factory=list)
    """Games read from the run's games.jsonl in this poll (in file order)."""
    games_followed: bool = False
    """The source is a run directory with a games.jsonl, followed (else games come from events)."""
    games_reset: bool = False


#: (game_id, condition id, outcome) of one game line.
GameSummary = tuple[str, str, str]


def parse_game_lines(lines: list[bytes]) -> tuple[list[GameSummary], int]:
    """The games of complete lines (a game glued to a fragment recovered), and the unreadable count."""
    games: list[GameSummary] = []
    bad = 0
    for line in lines:
        try:
            parsed = parse_game_line(line)
        except (SchemaVersionError, ValueError):
            parsed = "unreadable"
        if isinstance(parsed, str):
            bad += 1
            continue
        game = parsed[0]
        games.append((game.game_id, game.condition.id, str(game.outcome)))
    return games, bad


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
        self.game_tails = [None if r.suffix == ".jsonl" else JsonlTail(r / GAMES_FILE) for r in self.runs]
        self._lock = threading.Lock()

    def poll(self) -> list[SourceBatch]:
        """One batch per run, in the order the runs were given."""
        with self._lock:
            batches = []
            for i, tail in enumerate(self.tails):
                read = tail.read()
                events, bad, reason = parse_lines(read.lines)
                batch = SourceBatch(
                    i, events, bad, reason, exists=read.exists, reset=read.reset, more=read.more,
                    error=read.error,
                )
                games_tail = self.game_tails[i]
                if games_tail is not None:
                    games_read = games_tail.read()
                    batch.games, bad_games = parse_game_lines(games_read.lines)
                    batch.games_followed, batch.games_reset = games_read.exists, games_read.reset
                    batch.more = batch.more or games_read.more
                    if bad_games:
                        batch.malformed += bad_games
                        batch.last_malformed = f"{GAMES_FILE}: {bad_games} unreadable line(s)"
                batches.append(batch)
            return batches
