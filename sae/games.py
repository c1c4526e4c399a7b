"""The games of a run and the two groups every SAE pass compares.

Groups (docs/protocol.md §3): bankrupt games vs voluntarily stopped games (`is_voluntary_stop`:
outcome `stopped` with the last decision read from the model's own words). Every other game is
dropped and counted by rule: `max_rounds`, `no_decision`, `invalid`, `stopped_by_fallback` (a stop
the parser guessed), `no_prompt` (no saved decision prompt).
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import RunDirError
from harness.records import GameRecord, is_voluntary_stop, read_game
from harness.rundir.files import GAMES_FILE

GROUPS = ("bankrupt", "stopped")
#: Why a game is in neither group, in the order the rules are tried.
DROP_RULES = ("max_rounds", "no_decision", "invalid", "stopped_by_fallback", "no_prompt")


def group_of(game: GameRecord) -> str | None:
    """'bankrupt', 'stopped' (a voluntary stop only) or None."""
    if game.outcome == "bankrupt":
        return "bankrupt"
    return "stopped" if is_voluntary_stop(game) else None


def drop_reason(game: GameRecord) -> str | None:
    """The DROP_RULES entry that keeps `game` out of both groups, or None when it is in one."""
    if group_of(game) is None:
        return "stopped_by_fallback" if game.outcome == "stopped" else game.outcome
    return None if decision_rounds(game) else "no_prompt"


def split_groups(games: list[GameRecord]) -> tuple[list[tuple[GameRecord, str]], dict[str, int]]:
    """([(game, group)] of the games in a group with a saved prompt, {rule: games it dropped})."""
    dropped = dict.fromkeys(DROP_RULES, 0)
    kept = []
    for g in games:
        reason, group = drop_reason(g), group_of(g)
        if reason is None:
            assert group is not None  # no drop reason: the game is in a group
            kept.append((g, group))
        else:
            dropped[reason] += 1
    return kept, dropped


def read_games(run_dir: Path) -> list[GameRecord]:
    """All games of a run directory (RunDirError naming the line if one is unreadable)."""
    file = run_dir / GAMES_FILE
    if not file.is_file():
        raise RunDirError(f"{file}: not found (is {run_dir} a run directory?)")
    games = []
    with open(file) as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                games.append(read_game(line))  # tolerant reader
            except ValueError as e:
                raise RunDirError(f"{file}:{n}: not a game record: {str(e).splitlines()[0]}") from None
    return games


def decision_rounds(game: GameRecord):
    """The rounds where the model decided (not forced) and whose prompt was saved, in order."""
    return [r for r in game.rounds if not r.forced and r.prompt is not None]
