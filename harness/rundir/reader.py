"""The one reader of a run directory's games, with one policy for every consumer: resume, `harness
analyze`, `harness status`, every SAE pass and the monitor see the same games.

The policy, line by line through `games.jsonl`:
- a torn tail (a last line without its newline: a writer killed mid-write) is skipped; a resume
  cuts it off and plays that game again;
- a complete line that follows a dead worker's half-written fragment on the same line is
  recovered (the fragment is dropped; its game replays);
- an unreadable line is skipped, counted and named (`line N: why`);
- a game written twice (a driver killed between two workers' writes) resolves to its first copy,
  and the later copies are counted;
- a line of a newer major schema version is refused (`SchemaVersionError` naming file and line).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from harness.records import GameRecord, SchemaVersionError, read_game
from harness.rundir.files import EVENTS_FILE, GAMES_FILE, MANIFEST_FILE
from harness.rundir.jsonl import complete_lines

_GAME_START = b'{"type":"game"'


@dataclass
class GameLine:
    """One readable game line: its record, where it is, and the bytes it was read from."""

    game: GameRecord
    line_no: int
    data: bytes
    recovered: bool = False
    """Read from after a dead worker's fragment on the same line."""


@dataclass
class GamesRead:
    """What one read of games.jsonl found."""

    lines: list[GameLine] = field(default_factory=list)
    """The first copy of each game, in file order."""
    torn_tail: bool = False
    unreadable: list[str] = field(default_factory=list)
    """`line N: why` for each line skipped (the torn tail not included)."""
    recovered: int = 0
    duplicates: int = 0
    """Later copies of a game already read (dropped)."""

    @property
    def games(self) -> list[GameRecord]:
        return [line.game for line in self.lines]

    def by_id(self) -> dict[str, GameRecord]:
        return {line.game.game_id: line.game for line in self.lines}

    def note(self) -> str | None:
        """One line on what was skipped, recovered or dropped; None when the file was clean."""
        parts = []
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} unreadable line(s) skipped ({self.unreadable[0]})")
        if self.torn_tail:
            parts.append("a torn last line skipped (a game being written)")
        if self.recovered:
            parts.append(f"{self.recovered} line(s) recovered after a dead worker's fragment")
        if self.duplicates:
            parts.append(f"{self.duplicates} duplicate game line(s) dropped (first copy kept)")
        return "; ".join(parts) or None


def _why(error: ValidationError) -> str:
    err = error.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}" if where else str(err["msg"])


def parse_game_line(line: bytes) -> tuple[GameRecord, bytes, bool] | str:
    """(game, the bytes it was read from, recovered) for one complete line, or why it is
    unreadable. SchemaVersionError for a newer major version."""
    try:
        return read_game(line), line, False
    except ValidationError as e:
        start = line.rfind(_GAME_START)
        if start > 0:  # a record appended right after a dead worker's half-written fragment
            try:
                return read_game(line[start:]), line[start:], True
            except ValidationError:
                pass
        return _why(e)


def iter_game_lines(path: Path) -> Iterator[tuple[int, bytes | None]]:
    """(line number, bytes) of every non-blank line; None for the torn tail."""
    for n, line in enumerate(complete_lines(path), 1):
        if line is None or line.strip():
            yield n, line


def read_game_lines(path: Path) -> GamesRead:
    """Read games.jsonl under the policy above (an absent file reads as empty)."""
    read = GamesRead()
    seen: set[str] = set()
    for n, line in iter_game_lines(path):
        if line is None:
            read.torn_tail = True
            continue
        try:
            parsed = parse_game_line(line)
        except SchemaVersionError as e:
            raise SchemaVersionError(f"{path}: line {n}: {e}") from None
        if isinstance(parsed, str):
            read.unreadable.append(f"line {n}: {parsed}")
            continue
        game, data, recovered = parsed
        if game.game_id in seen:
            read.duplicates += 1
            continue
        seen.add(game.game_id)
        read.recovered += recovered
        read.lines.append(GameLine(game, n, data, recovered))
    return read


class RunFiles:
    """A run directory's files by name, and its games read under the one policy."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.games_path = self.path / GAMES_FILE
        self.events_path = self.path / EVENTS_FILE
        self.manifest_path = self.path / MANIFEST_FILE

    def games(self) -> GamesRead:
        """The run's games (see the module docstring for what is skipped and counted)."""
        return read_game_lines(self.games_path)

    def done_ids(self) -> set[str]:
        """The ids of the games complete on disk: what a resume does not play again."""
        return {line.game.game_id for line in self.games().lines}
