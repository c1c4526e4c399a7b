"""One worker's run: open the run directory, start the backend, play the games not yet done,
and stream games and events to disk. The CLI (and each GPU worker process) calls `run_worker`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.backends import Backend, create_backend
from harness.backends.checkpoints import resolve_model_path
from harness.backends.devices import nvml_stats
from harness.backends.formatter import PromptFormatter
from harness.config import RunConfig
from harness.records import ErrorEvent, GameDoneEvent, GameRecord, ProgressEvent, RunEndEvent, RunStartEvent
from harness.run.runner import GameRunner, GameSpec, RunStats, plan_games
from harness.rundir.store import JsonlAppender, RunDir, read_games


@dataclass
class WorkerResult:
    games_done: int
    games_total: int
    stats: RunStats
    wall_s: float
    status: str


def pending_games(config: RunConfig, run_dir: RunDir) -> tuple[list[GameSpec], int]:
    """Games of the plan not yet in games.jsonl, and how many are already done."""
    done, _ = read_games(run_dir.games_path)
    specs = plan_games(config)
    todo = [s for s in specs if s.game_id not in done]
    return todo, len(specs) - len(todo)


def make_formatter(config: RunConfig, model_path: str | None) -> PromptFormatter:
    if model_path is None:
        return PromptFormatter(None, config.model.style, config.model.system_prompt)
    return PromptFormatter.from_pretrained(model_path, config.model.style, config.model.system_prompt)


async def run_worker(
    config: RunConfig,
    specs: list[GameSpec],
    *,
    run_id: str,
    already_done: int = 0,
    worker: int = 0,
    gpu: str | None = None,
    backend: Backend | None = None,
    on_game: Callable[[GameRecord, RunStats], None] | None = None,
) -> WorkerResult:
    """Play `specs` into the run directory `config.out` (already prepared)."""
    run_dir = RunDir(config.out)
    model_path = None if config.backend.kind == "scripted" else resolve_model_path(config.model)
    formatter = make_formatter(config, model_path)
    backend = backend or create_backend(config, model_path, formatter)
    stats = RunStats()
    games_total = len(specs) + already_done
    base = dict(run_id=run_id, worker=worker, gpu=gpu)
    games_out = await JsonlAppender(run_dir.games_path).open()
    events_out = await JsonlAppender(run_dir.events_path).open()
    status = "failed"
    try:
        await events_out.write(RunStartEvent(
            **base, time=time.time(), model=config.model.name, games_total=games_total,
            games_already_done=already_done, resumed=already_done > 0, pid=os.getpid(),
        ))
        async with backend:
            gpu = gpu if gpu is not None else backend.gpu
            base["gpu"] = gpu
            runner = GameRunner(config, backend, formatter, run_id=run_id, worker=worker, gpu=gpu, stats=stats)

            async def game_done(record: GameRecord) -> None:
                await games_out.write(record)
                await events_out.write(GameDoneEvent(
                    **base, time=time.time(), game_id=record.game_id, condition_id=record.condition.id,
                    outcome=record.outcome, final_balance=record.final_balance, n_rounds=record.n_rounds,
                    retries=record.retries,
                ))
                if on_game:
                    on_game(record, stats)

            async def error(message: str, game_id: str | None) -> None:
                await events_out.write(ErrorEvent(**base, time=time.time(), message=message, game_id=game_id))

            async def progress() -> None:
                last_t, last_req, last_tok = stats.started, 0, 0
                while True:
                    await asyncio.sleep(config.progress_interval_s)
                    now = time.time()
                    dt = max(now - last_t, 1e-9)
                    elapsed = max(now - stats.started, 1e-9)
                    await events_out.write(ProgressEvent(
                        **base, time=now, games_done=already_done + stats.games_done, games_total=games_total,
                        requests=stats.requests, requests_per_s=(stats.requests - last_req) / dt,
                        tokens_per_s=(stats.tokens_out - last_tok) / dt,
                        avg_requests_per_s=stats.requests / elapsed, avg_tokens_per_s=stats.tokens_out / elapsed,
                        retries=stats.retries, empty_retries=stats.empty_retries, invalid=stats.invalid,
                        errors=stats.errors, in_flight=stats.in_flight,
                        **(backend.memory_stats() | (nvml_stats(gpu) if gpu is not None else {})),
                    ))
                    last_t, last_req, last_tok = now, stats.requests, stats.tokens_out

            reporter = asyncio.create_task(progress())
            try:
                await runner.run(specs, game_done, error)
            finally:
                reporter.cancel()
        status = "complete" if stats.errors == 0 else "incomplete"
    except asyncio.CancelledError:
        status = "interrupted"
        raise
    finally:
        wall = time.time() - stats.started
        await events_out.write(RunEndEvent(
            **base, time=time.time(), games_done=already_done + stats.games_done,
            games_total=games_total, wall_s=wall, status=status,  # type: ignore[arg-type]
        ))
        await games_out.close()
        await events_out.close()
    return WorkerResult(already_done + stats.games_done, games_total, stats, wall, status)
