"""`harness show RUN [GAME_ID | --condition ID] [--round N] [--json]`: read a run's games in a terminal."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from harness.errors import ConfigError
from harness.rundir.files import GAMES_FILE


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "show",
        help="Print a run's games: its conditions, a condition's games, or one game round by round.",
        description=f"Read RUN/{GAMES_FILE} (as every reader of a run reads it) and print: without GAME_ID, "
        "one row per condition (games, outcomes, mean rounds and final balance); with --condition ID, that "
        "condition's games; with GAME_ID, the game round by round (the part of each prompt new to its "
        "round, the answer, parse kind, decision, bet, result, balance, re-asks, the decision step); "
        "with --round N too, that round with its whole prompt. --json prints the same views as JSON.",
    )
    p.add_argument("run", type=Path, metavar="RUN", help="A run directory.")
    p.add_argument("game_id", nargs="?", metavar="GAME_ID", help="A game id (see --condition).")
    p.add_argument("--condition", metavar="ID", help="A condition id, e.g. variable-L-GMP.")
    p.add_argument("--round", type=int, metavar="N", help="With GAME_ID: round N in full.")
    p.add_argument("--json", action="store_true", help="JSON instead of tables.")
    p.set_defaults(func=run, validate=validate)


def validate(args: argparse.Namespace) -> None:
    if args.game_id is not None and args.condition is not None:
        raise ConfigError("GAME_ID and --condition: give one")
    if args.round is not None and args.game_id is None:
        raise ConfigError("--round: needs a GAME_ID")
    if args.round is not None and args.round < 1:
        raise ConfigError(f"--round: rounds count from 1, got {args.round}")


def run(args: argparse.Namespace) -> int:
    from harness import transcript
    from harness.errors import RunDirError
    from harness.rundir.files import GAMES_FILE
    from harness.rundir.reader import RunFiles

    files = RunFiles(args.run)
    if not args.run.is_dir():
        raise RunDirError(f"{args.run}: not a run directory")
    if not files.games_path.exists():
        raise RunDirError(f"{args.run}: has no {GAMES_FILE} (no game finished yet?)")
    games = [line.game for line in files.games().lines]
    if args.game_id is not None:
        found = next((g for g in games if g.game_id == args.game_id), None)
        if found is None:
            raise ConfigError(f"GAME_ID: no game {args.game_id!r} in {files.games_path}")
        view = transcript.game_view(found)
        if args.round is not None:
            chosen = [r for r in view.rounds if r.round == args.round]
            if not chosen:
                raise ConfigError(f"--round: game {args.game_id} has rounds 1-{len(view.rounds)}")
            return _print(chosen[0], args.json, _round_full)
        return _print(view, args.json, _game)
    if args.condition is not None:
        rows = transcript.condition_games(games, args.condition)
        if not rows:
            known = sorted({g.condition.id for g in games})
            raise ConfigError(f"--condition: no game of {args.condition!r} in {files.games_path} "
                              f"({len(known)} conditions there, e.g. {', '.join(known[:3])})")
        return _print(rows, args.json, _games_table)
    return _print(transcript.conditions(games), args.json, _conditions_table)


def _print(view, as_json: bool, render) -> int:
    if as_json:
        data = ([v.model_dump(mode="json") for v in view] if isinstance(view, list)
                else view.model_dump(mode="json"))
        print(json.dumps(data, indent=2))
        return 0
    from rich.console import Console

    console = Console(highlight=False)
    for part in render(view):
        console.print(part)
    return 0


def _conditions_table(rows):
    from rich.table import Table

    table = Table(title="Conditions", title_justify="left")
    for name in ("condition", "games", "outcomes", "mean rounds", "mean final balance"):
        table.add_column(name, justify="left" if name in ("condition", "outcomes") else "right",
                         no_wrap=name == "condition")
    for r in rows:
        outcomes = ", ".join(f"{o} {n}" for o, n in r.outcomes.items())
        table.add_row(r.condition, str(r.games), outcomes, f"{r.mean_rounds:.1f}",
                      f"${r.mean_final_balance:.0f}")
    yield table


def _games_table(rows):
    from rich.table import Table

    table = Table(title=f"Games of {rows[0].condition}", title_justify="left")
    for name in ("game", "repetition", "outcome", "rounds", "final balance", "re-asks"):
        table.add_column(name, justify="left" if name in ("game", "outcome") else "right",
                         no_wrap=name == "game")
    for r in rows:
        table.add_row(r.game_id, str(r.repetition), r.outcome, str(r.rounds), f"${r.final_balance}",
                      str(r.retries))
    yield table


def round_line(r) -> str:
    """'Round 3: Bet $10 (final_decision), LOSS, $100 -> $90' and the re-asks, on one line."""
    if r.forced:
        act = f"forced Bet ${r.bet}"
    elif r.decision == "bet":
        asked = f" (asked ${r.requested_bet})" if r.requested_bet not in (None, r.bet) else ""
        act = f"Bet ${r.bet}{asked}"
    else:
        act = "Stop" if r.decision == "stop" else "no decision"
    result = "" if r.win is None else (", WIN" if r.win else ", LOSS")
    kind = f" [{r.parse_kind}]" if r.parse_kind else ""
    extra = []
    if r.retries:
        extra.append(f"re-asks {r.retries} (empty {r.empty_retries}, unreadable {r.unparsed_retries}, "
                     f"timeouts {r.timeouts})")
    if r.transport_retries:
        extra.append(f"transport retries {r.transport_retries}")
    tail = f"  ·  {'; '.join(extra)}" if extra else ""
    return f"Round {r.round}: {act}{kind}{result}, ${r.balance_before} -> ${r.balance_after}{tail}"


def _game(view):
    from rich.panel import Panel
    from rich.text import Text

    g = view.game
    head = (f"{g.game_id}  ·  {g.condition}  ·  {view.model}  ·  seed {view.seed}\n"
            f"outcome {g.outcome}, {g.rounds} rounds, final balance ${g.final_balance}, re-asks {g.retries}")
    if view.invalid_reason:
        head += f"\ninvalid: {view.invalid_reason}"
    yield Panel(Text(head), title="Game", title_align="left")
    for r in view.rounds:
        body = Text()
        if r.forced:
            body.append("the opening round, forced (no model call)", style="dim")
        else:
            body.append("new in the prompt:\n", style="bold")
            body.append((r.new_prompt or "").strip() + "\n\n")
            body.append("answer:\n", style="bold")
            body.append((r.response or "").strip() or "(empty)")
            if r.extract_prompt is not None:
                step = "follow-up turn" if r.parse_kind == "follow_up" else "decision step"
                body.append(f"\n\n{step}: ", style="bold")
                body.append((r.extract_response or "(no answer)").strip())
        yield Panel(body, title=Text(round_line(r)), title_align="left")


def _round_full(r):
    from rich.panel import Panel
    from rich.text import Text

    yield Text(round_line(r), style="bold")
    yield Text(f"seed {r.seed}, finish {r.finish_reason}, tokens {r.tokens_in} in / {r.tokens_out} out, "
               f"{r.latency_s:.2f} s")
    yield Panel(Text(r.prompt or "(no prompt: forced round)"), title="prompt, whole", title_align="left")
    yield Panel(Text(r.response or "(empty)"), title="answer", title_align="left")
    if r.extract_prompt is not None:
        yield Panel(Text(r.extract_prompt), title="decision step: prompt", title_align="left")
        yield Panel(Text(r.extract_response or "(no answer)"), title="decision step: answer",
                    title_align="left")
