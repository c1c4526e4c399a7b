"""One worker's run: open the run directory, start the backend, play the games not yet done,
and stream games and events to disk. The CLI (and each worker process) calls `run_worker`.

How a run ends is always written as a `run_end` event: "complete", "incomplete" (some games
errored: a rerun resumes them), "interrupted" (Ctrl-C or SIGTERM: `harness.run.stop`) or
"failed" (the engine died, or the disk filled up: one fatal error event names it, then
`BackendDied` or `NoSpaceError` goes up). A game counts as done once its line is written, so
run_end's `games_done` is the number of lines kept.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

from harness.backends import Backend, create_backend
from harness.backends.base import BackendDied
from harness.backends.checkpoints import local_model_path
from harness.backends.devices import nvml_stats
from harness.backends.formatter import PromptFormatter
from harness.config import RunConfig
from harness.errors import NoSpaceError
from harness.records import GameRecord
from harness.run.runner import GameRunner, GameSpec, RunStats, plan_games
from harness.run.stop import StopOnSignal
from harness.rundir.events import EventWriter
from harness.rundir.fileops import is_no_space
from harness.rundir.jsonl import JsonlAppender
from harness.rundir.store import RunDir


@dataclass
class WorkerResult:
    games_done: int
    games_total: int
    stats: RunStats
    wall_s: float
    status: str


def pending_games(config: RunConfig, run_dir: RunDir) -> tuple[list[GameSpec], int]:
    """Games of the plan not yet in games.jsonl, and how many are already done."""
    done = run_dir.done_ids()
    specs = plan_games(config)
    todo = [s for s in specs if s.game_id not in done]
    return todo, len(specs) - len(todo)


def make_formatter(config: RunConfig, model_path: str | None) -> PromptFormatter:
    if model_path is None:
        return PromptFormatter(None, config.model.style, config.model.system_prompt)
    return PromptFormatter.from_pretrained(model_path, config.model.style, config.model.system_prompt)


class WorkerEvents:
    """This worker's lines of events.jsonl, through the one event writer
    (`harness.rundir.events.EventWriter`): the async face the game loop awaits, plus the periodic
    progress task. The game counts include the games already done before this start."""

    def __init__(self, writer: EventWriter, stats: RunStats, *, games_total: int, already_done: int):
        self.writer, self.stats = writer, stats
        self.games_total, self.already_done = games_total, already_done

    @property
    def run_id(self) -> str:
        return self.writer.run_id

    @property
    def worker(self) -> int:
        return self.writer.worker

    @property
    def gpu(self) -> str | None:
        return self.writer.gpu

    @property
    def games_done(self) -> int:
        return self.already_done + self.stats.games_done

    async def run_start(self, model: str) -> None:
        self.writer.run_start(model=model, games_total=self.games_total, games_already_done=self.already_done)

    async def game_done(self, record: GameRecord) -> None:
        self.writer.game_done(record)

    async def error(self, message: str, game_id: str | None = None, *, fatal: bool = False) -> None:
        self.writer.error(message, game_id, fatal=fatal)

    async def report_progress(self, interval_s: float, backend: Backend) -> None:
        """Every `interval_s`: rates over the last interval and since the start. Runs until cancelled."""
        stats = self.stats
        last_t, last_req, last_tok = stats.started, 0, 0
        while True:
            await asyncio.sleep(interval_s)
            now = time.time()
            dt, elapsed = max(now - last_t, 1e-9), max(now - stats.started, 1e-9)
            endpoints = backend.endpoint_stats()
            self.writer.progress(
                games_done=self.games_done, games_total=self.games_total,
                requests=stats.requests, requests_per_s=(stats.requests - last_req) / dt,
                tokens_per_s=(stats.tokens_out - last_tok) / dt,
                avg_requests_per_s=stats.requests / elapsed, avg_tokens_per_s=stats.tokens_out / elapsed,
                retries=stats.retries, empty_retries=stats.empty_retries, invalid=stats.invalid,
                errors=stats.errors, in_flight=stats.in_flight,
                transport_retries=stats.transport_retries, endpoints=endpoints,
                rate_limited=sum(e.rate_limited for e in endpoints),
                **(backend.memory_stats() | (nvml_stats(self.gpu) if self.gpu is not None else {})),
            )
            last_t, last_req, last_tok = now, stats.requests, stats.tokens_out

    def wall_s(self) -> float:
        return time.time() - self.stats.started

    def end_now(self, status: str = "interrupted") -> None:
        """Write run_end once (also from another thread, when the process exits without waiting for
        the event loop)."""
        self.writer.run_end(status, games_done=self.games_done, games_total=self.games_total,
                            wall_s=self.wall_s())


class _DiskFull(Exception):
    """A game line could not be written for lack of space (becomes one `NoSpaceError` line)."""


class _GameSink:
    """Where a finished game goes: its line (fsynced when the config says so), then it counts as
    done, then its event. A write under way when the run is cancelled is waited for and counted."""

    def __init__(self, games_out: JsonlAppender, events: WorkerEvents, on_game, stats: RunStats):
        self.games_out, self.events, self.on_game, self.stats = games_out, events, on_game, stats

    async def __call__(self, record: GameRecord) -> None:
        write = asyncio.ensure_future(self.games_out.write(record))
        try:
            await asyncio.shield(write)
        except asyncio.CancelledError:
            await asyncio.wait([write])
            if write.exception() is None:
                self.stats.count_game(record)
            raise
        except OSError as e:
            if is_no_space(e):
                raise _DiskFull(str(self.games_out.path)) from None
            raise
        self.stats.count_game(record)
        await self.events.game_done(record)
        if self.on_game:
            self.on_game(record, self.stats)


def _found(group: BaseExceptionGroup, kinds: tuple[type[Exception], ...]) -> Exception | None:
    """What ended the runner's task group, if it is one of `kinds` (the engine's death, a full disk)."""
    for exc in group.exceptions:
        found = _found(exc, kinds) if isinstance(exc, BaseExceptionGroup) else exc
        if isinstance(found, kinds):
            return found
    return None


async def _play(config: RunConfig, backend: Backend, formatter: PromptFormatter, specs: list[GameSpec],
                events: WorkerEvents, sink: _GameSink) -> str:
    """Play the games with the backend started; returns the status of a run that ended by itself."""
    runner = GameRunner(config, backend, formatter, run_id=events.run_id, worker=events.worker,
                        gpu=events.gpu, stats=events.stats)
    reporter = asyncio.create_task(events.report_progress(config.progress_interval_s, backend))
    try:
        await runner.run(specs, sink, events.error)
    except BaseExceptionGroup as group:
        ended = _found(group, (BackendDied, _DiskFull))
        if ended is None:
            raise
        raise ended from None
    finally:
        reporter.cancel()
    return "complete" if events.stats.errors == 0 else "incomplete"


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
    """Play `specs` into the run directory `config.out` (already prepared, and locked by the driver)."""
    run_dir = RunDir(config.out)
    model_path = local_model_path(config)
    formatter = make_formatter(config, model_path)
    backend = backend or create_backend(config, model_path, formatter)
    stats = RunStats()
    games_out = await JsonlAppender(run_dir.games_path, config.run.durability).open()
    events = WorkerEvents(EventWriter(run_dir.events_path, run_id=run_id, worker=worker, gpu=gpu), stats,
                          games_total=len(specs) + already_done, already_done=already_done)
    status = "failed"
    try:
        with StopOnSignal(backend.cancel, on_overdue=events.end_now):
            await events.run_start(config.model.name)
            async with backend:
                events.writer.gpu = gpu if gpu is not None else backend.gpu
                try:
                    status = await _play(config, backend, formatter, specs, events,
                                         _GameSink(games_out, events, on_game, stats))
                finally:
                    if backend.served():  # what the endpoint said it is, once it has answered
                        run_dir.note_served(backend.served())
    except asyncio.CancelledError:
        status = "interrupted"
        raise
    except BackendDied as e:
        await events.error(str(e), fatal=True)
        raise
    except _DiskFull as e:
        message = f"no space left on device writing {e}: {events.games_done} games kept, rerun to resume"
        await events.error(message, fatal=True)
        raise NoSpaceError(message) from None
    finally:
        events.end_now(status)
        wall = events.wall_s()
        await games_out.close()
    return WorkerResult(events.games_done, events.games_total, stats, wall, status)
