"""A run as an Inspect eval log (`harness export inspect`), written with inspect_ai's own log API,
so `inspect view`, `read_eval_log`, `samples_df` and `messages_df` open it.

One sample per game: the conversation as messages (each decision round's prompt as the model saw it,
then its answer; the decision step's prompt and answer where there was one), the outcome and the
game's metrics as scores, and the condition, seeds and parse kinds as metadata.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from harness.records import GameRecord
from harness.rundir.manifest import Manifest

#: The task name the log carries (one per kind of game, as an Inspect task).
TASK = "gamble-harness/slot-machine"
#: Scores per game, each a number so Inspect's metrics and `samples_df` read them as such.
SCORES = ("bankrupt", "stopped", "final_balance", "rounds", "total_bet")


def _messages(game: GameRecord) -> list[Any]:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageUser

    out: list[Any] = []
    for r in game.rounds:
        if r.forced or r.prompt is None:
            continue
        meta = {"round": r.round, "parse_kind": r.parse_kind, "seed": r.seed, "retries": r.retries}
        at = f"{game.game_id}-r{r.round}"  # message ids: messages_df keys its rows by them
        out.append(ChatMessageUser(id=f"{at}-prompt", content=r.prompt, metadata={"round": r.round}))
        out.append(ChatMessageAssistant(id=f"{at}-answer", content=r.response or "", metadata=meta))
        if r.extract_prompt is not None:
            step = {"round": r.round, "step": "decision"}
            out.append(ChatMessageUser(id=f"{at}-step-prompt", content=r.extract_prompt, metadata=step))
            out.append(ChatMessageAssistant(id=f"{at}-step-answer", content=r.extract_response or "",
                                            metadata=step))
    return out


def score_values(game: GameRecord) -> dict[str, float]:
    """The game's scores: 1/0 for bankrupt and stopped, its final balance, rounds and total bet."""
    return {"bankrupt": float(game.outcome == "bankrupt"), "stopped": float(game.outcome == "stopped"),
            "final_balance": float(game.final_balance), "rounds": float(game.n_rounds),
            "total_bet": float(game.total_bet)}


def _scores(game: GameRecord) -> dict[str, Any]:
    from inspect_ai.scorer import Score

    return {name: Score(value=value, answer=game.outcome) for name, value in score_values(game).items()}


def sample(game: GameRecord) -> Any:
    """One game as an `EvalSample`."""
    from inspect_ai.log import EvalSample

    messages = _messages(game)
    first = next((r.prompt for r in game.rounds if r.prompt is not None), "")
    return EvalSample(
        id=game.game_id, epoch=1, input=first, target="", messages=messages, scores=_scores(game),
        metadata={
            "condition": game.condition.id, "bet_type": game.condition.bet_type,
            "first_result": game.condition.first_result, "components": game.condition.components,
            "repetition": game.repetition, "outcome": game.outcome, "game_seed": game.seed,
            "run_seed": game.run_seed, "retries": game.retries, "invalid_reason": game.invalid_reason,
            "parse_kinds": [r.parse_kind for r in game.rounds if not r.forced],
            "seeds": [r.seed for r in game.rounds if not r.forced],
        },
        total_time=game.wall_s,
    )


def _iso(t: float | None) -> str:
    return dt.datetime.fromtimestamp(t or 0, tz=dt.UTC).isoformat()


def eval_log(manifest: Manifest, games: list[GameRecord], run_dir: Path) -> Any:
    """The run as an `EvalLog`: 'success' when every game of the run is there, else 'started'."""
    from inspect_ai.log import (
        EvalConfig,
        EvalDataset,
        EvalLog,
        EvalMetric,
        EvalResults,
        EvalScore,
        EvalSpec,
    )

    config = manifest.config
    model = manifest.model or "?"
    spec = EvalSpec(
        created=_iso(manifest.created), task=TASK, run_id=manifest.run_id,
        dataset=EvalDataset(name=str(run_dir), samples=manifest.games_total or len(games)),
        model=f"harness/{model}", config=EvalConfig(),
        task_args={"conditions": config.get("conditions"), "repetitions": config.get("repetitions"),
                   "game": config.get("game")},
        metadata={"run_dir": str(run_dir), "run_seed": manifest.seed, "harness_config": config,
                  "served": manifest.served},
    )
    n = len(games)
    values = [score_values(g) for g in games]
    scores = [
        EvalScore(name=name, scorer=name, scored_samples=n, metrics={
            "mean": EvalMetric(name="mean", value=sum(v[name] for v in values) / n if n else 0.0)})
        for name in SCORES
    ]
    complete = manifest.games_total is not None and n >= manifest.games_total
    return EvalLog(
        eval=spec, status="success" if complete else "started",
        results=EvalResults(total_samples=manifest.games_total or n, completed_samples=n, scores=scores),
        samples=[sample(g) for g in games],
    )


def write_inspect_log(run_dir: Path, out: Path) -> tuple[Path, int]:
    """Write the run's eval log to `out` (.eval or .json); returns the path and the samples written."""
    from inspect_ai.log import write_eval_log

    from harness.errors import RunDirError
    from harness.rundir.files import MANIFEST_FILE
    from harness.rundir.manifest import read_manifest
    from harness.rundir.reader import RunFiles

    manifest = read_manifest(run_dir)
    if manifest is None:
        raise RunDirError(f"{run_dir}: no {MANIFEST_FILE} (not a run directory)")
    games = [line.game for line in RunFiles(run_dir).games().lines]
    log = eval_log(manifest, games, run_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_eval_log(log, str(out))
    return out, len(games)
