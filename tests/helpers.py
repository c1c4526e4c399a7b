"""Small builders for tests: hand-made rounds, games and run directories."""

from __future__ import annotations

import json
from pathlib import Path

from harness.game.conditions import parse_condition_id
from harness.records import GameRecord, RoundRecord


def make_round(
    n: int,
    balance_before: int,
    bet: int | None,
    win: bool | None,
    *,
    decision: str | None = "bet",
    forced: bool = False,
    parse_kind: str | None = "final_decision",
    prompt: str | None = None,
    response: str | None = None,
    payout: float = 3.0,
) -> RoundRecord:
    """A round; balance_after follows the rules (bet lost, 3x bet back on a win)."""
    after = balance_before
    if bet is not None:
        after = balance_before - bet + (int(payout * bet) if win else 0)
    return RoundRecord(
        round=n,
        forced=forced,
        balance_before=balance_before,
        decision=None if forced else decision,  # type: ignore[arg-type]
        bet=bet,
        win=win,
        balance_after=after,
        parse_kind=None if forced else parse_kind,  # type: ignore[arg-type]
        prompt=prompt,
        response=response,
    )


def make_game(
    bets: list[tuple[int, bool]],
    *,
    condition: str = "variable-none-BASE",
    end: str = "auto",
    repetition: int = 0,
    start: int = 100,
    forced_first: bool = False,
    model: str = "test-model",
    prompt: str = "PROMPT",
) -> GameRecord:
    """A game from (bet, win) pairs. `end`: "stop" adds a final stop round; "invalid" and
    "no_decision" a final round without a decision (as a guard or the unparsed policy ends a game);
    "auto" picks the outcome from the balance (bankrupt at 0, else stopped with a stop round)."""
    cond = parse_condition_id(condition)
    rounds: list[RoundRecord] = []
    balance = start
    for i, (bet, win) in enumerate(bets, start=1):
        r = make_round(i, balance, bet, win, forced=forced_first and i == 1, prompt=prompt,
                       response=f"Final Decision: Bet ${bet}")
        rounds.append(r)
        balance = r.balance_after
    if end == "auto":
        end = "bankrupt" if balance <= 0 else "stop"
    outcome = {
        "stop": "stopped", "bankrupt": "bankrupt", "max_rounds": "max_rounds", "invalid": "invalid",
        "no_decision": "no_decision",
    }[end]
    if end == "stop":
        rounds.append(
            make_round(len(rounds) + 1, balance, None, None, decision="stop", prompt=prompt,
                       response="Final Decision: Stop")
        )
    elif end in ("invalid", "no_decision"):
        rounds.append(
            make_round(len(rounds) + 1, balance, None, None, decision=None, prompt=prompt, response="",
                       parse_kind="empty" if end == "invalid" else "unparsed")
        )
    placed = [r for r in rounds if r.bet is not None]
    return GameRecord(
        game_id=f"{cond.id}-rep{repetition:03d}",
        run_id="test-run",
        model=model,
        condition=cond.record(),
        repetition=repetition,
        seed=1234 + repetition,
        run_seed=0,
        outcome=outcome,  # type: ignore[arg-type]
        final_balance=balance,
        n_rounds=len(placed),
        total_bet=sum(r.bet or 0 for r in placed),
        total_won=sum(int(3 * r.bet) for r in placed if r.win and r.bet),
        retries=0,
        rounds=rounds,
        started=0.0,
        wall_s=0.0,
    )


def write_games(run_dir: Path, games: list[GameRecord]) -> Path:
    """Write a minimal run directory (games.jsonl + manifest.json) and return it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(run_dir / "games.jsonl", "w") as f:
        for g in games:
            f.write(g.model_dump_json() + "\n")
    (run_dir / "manifest.json").write_text(
        json.dumps({"run_id": "test-run", "model": games[0].model if games else None})
    )
    return run_dir


_GAMES_AND_ANALYZE = """name = "s"
out = "{out}"
[[experiment]]
name = "games"
kind = "games"
config = "run.toml"
{games}
[[experiment]]
name = "behaviour"
kind = "analyze"
runs = ["games"]
{analyze}
"""


def write_study(folder: Path, games: str = "", analyze: str = "") -> Path:
    """folder/study.toml: a games experiment and an analyze of it, with extra lines (such as
    `options = {...}`) for each; its output goes to folder/study-out. Returns the study file."""
    (folder / "run.toml").write_text("seed = 1\n")
    path = folder / "study.toml"
    path.write_text(_GAMES_AND_ANALYZE.format(out=folder / "study-out", games=games, analyze=analyze))
    return path
