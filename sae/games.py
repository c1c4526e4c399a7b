"""The games of a run and the two groups every SAE pass compares.

Groups (docs/protocol.md §3): bankrupt games vs voluntarily stopped games (`is_voluntary_stop`:
outcome `stopped` with the last decision read from the model's own words). Every other game is
dropped and counted by rule: `max_rounds`, `no_decision`, `invalid`, `stopped_by_fallback` (a stop
the parser guessed), `no_prompt` (no saved decision prompt).
"""

from __future__ import annotations

from pathlib import Path

from harness.errors import RunDirError
from harness.records import GameRecord, is_voluntary_stop
from harness.rundir.reader import GamesRead, RunFiles

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


def read_run(run_dir: Path) -> GamesRead:
    """A run directory's games as every reader of a run reads them (`harness.rundir.reader`: a torn
    tail skipped, a game glued to a fragment recovered, a game's first copy kept, unreadable lines
    counted and named); RunDirError when there is no games file."""
    files = RunFiles(run_dir)
    if not files.games_path.is_file():
        raise RunDirError(f"{files.games_path}: not found (is {run_dir} a run directory?)")
    return files.games()


def read_games(run_dir: Path) -> list[GameRecord]:
    """The games of `read_run`."""
    return read_run(run_dir).games


def decision_rounds(game: GameRecord):
    """The rounds where the model decided (not forced) and whose prompt was saved, in order."""
    return [r for r in game.rounds if not r.forced and r.prompt is not None]
