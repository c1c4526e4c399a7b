"""A Ray worker's side: a session that plays the batches the driver hands it and keeps what it
produces (game lines, event lines, its own stdout/stderr) until the driver drains them.

The actor never opens the run directory: the driver alone appends to games.jsonl and events.jsonl
and writes RUN/workers/worker-N.log, so `--out` need exist only where the driver runs. The engine
starts once per session (`open`), then `play` calls, several at a time, share the run's
`concurrency` bound. `WorkerSession` has no Ray in it (tested in-process); `actor_class` wraps it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from harness.backends.base import Backend
from harness.errors import HarnessError
from harness.records import GameRecord
from harness.rundir.events import EventWriter
from harness.workers.process import WorkerJob, worker_config

if TYPE_CHECKING:
    from harness.run.worker_run import WorkerEvents


class Drained(BaseModel):
    """What a session kept since the last drain: whole JSON lines, and its output text."""

    games: list[str] = Field(default_factory=list)
    game_ids: list[str] = Field(default_factory=list)
    """`games[i]` is game `game_ids[i]`: the driver keeps each game once without parsing its line."""
    events: list[str] = Field(default_factory=list)
    log: str = ""
    served: dict | None = None
    """What the endpoint said it serves (`Backend.served`), once it has answered."""


class Opened(BaseModel):
    """Where the session runs: for the driver's messages, events and node avoidance."""

    host: str
    node_id: str | None
    pid: int
    gpu: str | None


class BufferedEventWriter(EventWriter):
    """The one event writer, keeping its lines for the driver instead of appending to a file."""

    def __init__(self, **stamp):
        super().__init__(None, **stamp)
        self.lines: list[str] = []

    def write(self, event: BaseModel) -> None:
        self.lines.append(event.model_dump_json())


class _GameBuffer:
    """The game sink's `games_out`: keeps each finished game's line (`harness.run.worker_run._GameSink`)."""

    path = "(driver)"

    def __init__(self):
        self.lines: list[str] = []
        self.ids: list[str] = []

    async def write(self, record: GameRecord) -> None:
        self.lines.append(record.model_dump_json())
        self.ids.append(record.game_id)


class OutputCapture:
    """This process's stdout and stderr (file descriptors 1 and 2, so the engine's own prints too)
    copied into a buffer the driver drains, and still to where they went before (Ray's logs)."""

    def __init__(self):
        self._chunks: list[bytes] = []
        self._lock = threading.Lock()

    def start(self) -> OutputCapture:
        read_fd, write_fd = os.pipe()
        self._saved = {fd: os.dup(fd) for fd in (1, 2)}
        for fd in (1, 2):
            sys.stdout.flush() if fd == 1 else sys.stderr.flush()
            os.dup2(write_fd, fd)
        os.close(write_fd)
        threading.Thread(target=self._pump, args=(read_fd,), daemon=True).start()
        return self

    def _pump(self, read_fd: int) -> None:
        while chunk := os.read(read_fd, 65536):
            with self._lock:
                self._chunks.append(chunk)
            try:
                os.write(self._saved[2], chunk)
            except OSError:
                pass

    def take(self) -> str:
        with self._lock:
            data, self._chunks = b"".join(self._chunks), []
        return data.decode(errors="replace")


class WorkerSession:
    """One worker's engine and games: `open`, then `play` batches (concurrently), `drain` as
    often as the driver likes, and `close` (or `stop` on Ctrl-C), which writes its run_end."""

    def __init__(self, job: WorkerJob, *, node_id: str | None = None, capture: OutputCapture | None = None):
        self.job, self.node_id, self.capture = job, node_id, capture
        self.config = worker_config(job)
        self._games = _GameBuffer()
        self._plays: set[asyncio.Task] = set()
        self._backend: Backend | None = None
        self._served_sent = False
        self.events: WorkerEvents | None = None  # from open() on
        self.reporter: asyncio.Task | None = None

    async def open(self) -> Opened:
        """Start the engine; a model directory missing on this node fails here, with the harness's
        own line (the driver shows it)."""
        from harness.backends import create_backend
        from harness.backends.checkpoints import local_model_path
        from harness.run.runner import GameRunner, RunStats, plan_games
        from harness.run.worker_run import WorkerEvents, _GameSink, make_formatter

        job, config = self.job, self.config
        self.writer = BufferedEventWriter(
            run_id=job.run_id, worker=job.worker, gpu=job.gpu, node_id=self.node_id
        )
        self.stats = RunStats()
        self.events = WorkerEvents(self.writer, self.stats, games_total=0, already_done=0)
        await self.events.run_start(config.model.name)
        try:
            model_path = local_model_path(config)
        except HarnessError as e:  # the line says which node lacks it
            node = socket.gethostname() + (f" ({self.node_id[:12]})" if self.node_id else "")
            raise type(e)(f"{e} (on node {node}: every node needs the model at this path)") from None
        formatter = make_formatter(config, model_path)
        backend = create_backend(config, model_path, formatter)
        await backend.__aenter__()
        self._backend = backend
        self.writer.gpu = job.gpu if job.gpu is not None else backend.gpu
        self.specs = {s.game_id: s for s in plan_games(config)}
        self.runner = GameRunner(
            config,
            backend,
            formatter,
            run_id=job.run_id,
            worker=job.worker,
            gpu=self.writer.gpu,
            stats=self.stats,
        )
        self.sink = _GameSink(self._games, self.events, None, self.stats)  # type: ignore[arg-type]
        self.sem = asyncio.Semaphore(config.concurrency)
        self.reporter = asyncio.create_task(self.events.report_progress(config.progress_interval_s, backend))
        return Opened(host=socket.gethostname(), node_id=self.node_id, pid=os.getpid(), gpu=self.writer.gpu)

    async def play(self, game_ids: list[str]) -> int:
        """Play these games (unknown ids are skipped); returns the games that errored. The engine's
        death is written as a fatal error event, then raised (the driver treats it as a crash)."""
        from harness.backends.base import BackendDied
        from harness.run.worker_run import _found

        events = self.events
        assert events is not None, "open() first"
        specs = [self.specs[g] for g in game_ids if g in self.specs]
        events.games_total += len(specs)
        errors_before = self.stats.errors
        task = asyncio.current_task()
        assert task is not None
        self._plays.add(task)
        try:
            await self.runner.run(specs, self.sink, events.error, sem=self.sem)
        except BaseExceptionGroup as group:
            died = _found(group, (BackendDied,))
            if died is None:
                raise
            await events.error(str(died), fatal=True)
            raise died from None
        finally:
            self._plays.discard(task)
        return self.stats.errors - errors_before

    def drain(self) -> Drained:
        games, self._games.lines = self._games.lines, []
        game_ids, self._games.ids = self._games.ids, []
        events, self.writer.lines = self.writer.lines, []
        served = None
        if self._backend is not None and not self._served_sent and self._backend.served():
            served, self._served_sent = self._backend.served(), True
        log = self.capture.take() if self.capture else ""
        return Drained(games=games, game_ids=game_ids, events=events, log=log, served=served)

    async def close(self, status: str | None = None) -> Drained:
        """End the session: cancel what still plays, stop the engine, write run_end (`status`, or
        complete/incomplete by this session's errors); returns the last lines."""
        for task in list(self._plays):
            task.cancel()
        if self._plays:
            await asyncio.wait(list(self._plays), timeout=30)
        if self.reporter is not None:
            self.reporter.cancel()
        if self._backend is not None:
            try:
                await self._backend.__aexit__(None, None, None)
            finally:
                self._backend = None
        if self.events is not None:
            self.events.end_now(status or ("complete" if self.stats.errors == 0 else "incomplete"))
        return self.drain()


def actor_class(ray):
    """The Ray actor around a `WorkerSession` (an async actor: drain runs while batches play)."""

    @ray.remote(max_restarts=0, max_concurrency=1000)
    class WorkerActor:
        def __init__(self, job: dict):
            gpu_ids = ray.get_gpu_ids()
            worker_job = WorkerJob.model_validate(job)
            if worker_job.gpu is not None:
                worker_job = worker_job.model_copy(update={"gpu": ",".join(str(g) for g in gpu_ids) or None})
            self.session = WorkerSession(
                worker_job, node_id=ray.get_runtime_context().get_node_id(), capture=OutputCapture().start()
            )
            where = f"pid {os.getpid()} on {socket.gethostname()}, gpu {worker_job.gpu}"
            cuda = os.environ.get("CUDA_VISIBLE_DEVICES")
            os.write(2, f"worker {worker_job.worker}: {where}, CUDA_VISIBLE_DEVICES={cuda!r}\n".encode())

        async def open(self) -> dict:
            return (await self.session.open()).model_dump()

        async def play(self, game_ids: list[str]) -> int:
            return await self.session.play(game_ids)

        async def drain(self) -> dict:
            return self.session.drain().model_dump()

        async def close(self, status: str | None = None) -> dict:
            return (await self.session.close(status)).model_dump()

    return WorkerActor
