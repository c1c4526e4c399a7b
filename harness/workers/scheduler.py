"""One worker process per GPU (or per CPU share), all writing into one run directory.

`harness run games --gpus 0,1,2,3` (or `all`, or `--workers N` for CPU processes) splits the
unfinished games by whole conditions, balanced by game count, and starts
`python -m harness.workers.process` per device with CUDA_VISIBLE_DEVICES set in the child's own
environment. Each child appends to the shared games.jsonl / events.jsonl (one O_APPEND write per
line), so a resume works whatever the number of workers.

A worker that dies (crash, OOM kill, SIGKILL) is reported: an ErrorEvent with fatal=True naming
the worker and GPU, a RunEndEvent "failed", and a line on the terminal. Its unfinished games
(read back from games.jsonl) then rerun: the worker is restarted once on the same device; if it
dies again the device is retired and its games go to the next surviving worker that finishes.
Games that no worker could finish stay pending: the run ends "incomplete" and a rerun resumes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from harness.config import RunConfig
from harness.run.runner import GameSpec
from harness.rundir.events import EventWriter
from harness.rundir.jsonl import close_torn_line
from harness.rundir.manifest import Manifest
from harness.rundir.store import RunDir
from harness.workers.gpus import CPU, resolve_gpus
from harness.workers.process import ProcessLauncher, WorkerJob


@dataclass
class Slot:
    """A worker place: index (unique in the run) and physical GPU id, None on CPU (a Ray
    launcher fills the id in once Ray has placed the actor)."""

    index: int
    gpu: str | None


def split_conditions(specs: list[GameSpec], n: int) -> list[list[GameSpec]]:
    """Split games into `n` shares of whole conditions, balanced by game count.

    Largest condition first, each to the share with fewest games (lowest index on ties), so the
    result depends only on the input order; within a share games keep their plan order.
    """
    if n < 1:
        raise ValueError("need at least one worker")
    groups: dict[str, list[GameSpec]] = {}
    for s in specs:
        groups.setdefault(s.condition.id, []).append(s)
    shares: list[list[GameSpec]] = [[] for _ in range(n)]
    for group in sorted(groups.values(), key=len, reverse=True):  # sorted() is stable
        min(shares, key=lambda share: len(share)).extend(group)
    position = {s.game_id: i for i, s in enumerate(specs)}
    return [sorted(share, key=lambda s: position[s.game_id]) for share in shares]


Launch = tuple[int, list[str], int]  # (slot index, game ids, games of its share already done)


@dataclass
class _SlotState:
    share: list[str]
    job: list[str] = field(default_factory=list)
    failures: int = 0
    running: bool = False
    retired: bool = False


class Scheduler:
    """The failure policy, free of processes: what to (re)start after each worker exit."""

    def __init__(self, shares: list[list[str]], max_restarts: int = 1):
        self.slots = [_SlotState(list(share)) for share in shares]
        self.max_restarts = max_restarts
        self.orphans: list[str] = []  # games of retired slots, waiting for a survivor
        self.left: list[str] = []  # games a worker reported failed (not a crash): for a resume
        self.deaths = 0

    @property
    def running(self) -> bool:
        return any(s.running for s in self.slots)

    def job(self, index: int) -> list[str]:
        return self.slots[index].job

    def _launch(self, index: int, ids: list[str]) -> Launch:
        slot = self.slots[index]
        slot.job, slot.running = list(ids), True
        return index, list(ids), len(slot.share) - len(ids)

    def initial(self) -> list[Launch]:
        return [self._launch(i, s.share) for i, s in enumerate(self.slots) if s.share]

    def _adopt(self) -> list[Launch]:
        idle = [i for i, s in enumerate(self.slots) if not s.running and not s.retired]
        if not self.orphans or not idle:
            return []
        ids, self.orphans = self.orphans, []
        self.slots[idle[0]].share.extend(ids)
        return [self._launch(idle[0], ids)]

    def on_exit(self, index: int, ok: bool, remaining: list[str]) -> list[Launch]:
        """A worker ended; `ok` is False for a crash. `remaining`: its job's games not on disk."""
        slot = self.slots[index]
        slot.running = False
        if ok:
            self.left.extend(remaining)
            return self._adopt()
        self.deaths += 1
        slot.failures += 1
        if remaining and slot.failures <= self.max_restarts:
            return [self._launch(index, remaining)]
        if slot.failures > self.max_restarts:
            slot.retired = True
            slot.share = [g for g in slot.share if g not in set(remaining)]
            self.orphans.extend(remaining)
        return self._adopt()

    def unfinished(self) -> list[str]:
        return self.left + self.orphans


class Launcher(Protocol):
    """Starts worker jobs and reports their ends: local processes or Ray actors."""

    def start(self, slot: Slot, job: WorkerJob) -> None: ...

    def poll(self, timeout: float) -> list[tuple[int, bool, str]]:
        """Workers ended since the last call: (slot index, ok, what happened)."""
        ...

    def stop(self) -> None: ...


def pending_ids(run_dir: RunDir, ids: Iterable[str]) -> list[str]:
    """Those of `ids` with no complete line in games.jsonl (the same test as a resume)."""
    done = run_dir.done_ids()
    return [g for g in ids if g not in done]


@dataclass
class DriveResult:
    deaths: int
    unfinished: list[str]


def drive(launcher: Launcher, slots: list[Slot], shares: list[list[str]], *, config: RunConfig, run_id: str,
          say=print, tick=lambda: None, max_restarts: int = 1) -> DriveResult:
    """Run the shares to the end through `launcher`, applying the failure policy."""
    run_dir = RunDir(config.out)
    scheduler = Scheduler(shares, max_restarts)
    started: dict[int, float] = {}
    config_json = config.model_dump(mode="json")

    def start(launches: list[Launch]) -> None:
        for index, ids, already in launches:
            slot = slots[index]
            started[index] = time.time()
            launcher.start(slot, WorkerJob(config=config_json, run_id=run_id, worker=slot.index, gpu=slot.gpu,
                                           game_ids=ids, already_done=already))

    start(scheduler.initial())
    try:
        while scheduler.running:
            for index, ok, detail in launcher.poll(0.2):
                slot, state = slots[index], scheduler.slots[index]
                if not ok:
                    close_torn_line(run_dir.games_path)
                    close_torn_line(run_dir.events_path)
                remaining = pending_ids(run_dir, scheduler.job(index))
                launches = scheduler.on_exit(index, ok, remaining)
                if not ok:
                    restarted = any(i == index for i, _, _ in launches)
                    fate = ("restarting it once" if restarted else
                            f"handing them to worker {slots[launches[0][0]].index}" if launches else
                            "nothing to rerun" if not remaining else
                            "the next worker to finish takes them" if scheduler.running else
                            "no worker left to take them: rerun to resume")
                    message = (f"worker {slot.index} ({describe(slot.gpu)}) died: {detail}; "
                               f"{len(remaining)} unfinished games, {fate}")
                    say(f"harness: {message}")
                    # the dead worker's stream, ended on its behalf
                    events = EventWriter(run_dir.events_path, run_id=run_id, worker=slot.index, gpu=slot.gpu)
                    events.error(message, fatal=True)
                    total = len(state.share) + (len(remaining) if state.retired else 0)
                    events.run_end("failed", games_done=total - len(remaining), games_total=total,
                                   wall_s=time.time() - started.get(index, time.time()))
                start(launches)
            tick()
    finally:
        launcher.stop()
    return DriveResult(scheduler.deaths, scheduler.unfinished())


def describe(gpu: str | None) -> str:
    return "CPU" if gpu is None else f"GPU {gpu}"


def make_slots(gpus: list[str]) -> list[Slot]:
    return [Slot(i, None if g == CPU else g) for i, g in enumerate(gpus)]


class WorkerView(Protocol):
    """A live view of the workers (the command's: `harness.commands.console.MultiProgress`)."""

    def __enter__(self) -> WorkerView: ...

    def __exit__(self, *exc) -> None: ...

    def say(self, message: str) -> None: ...

    def tick(self) -> None: ...


#: Builds the view from the events file, the slots, their shares (None: pulled as they free up),
#: games done before and in all.
ViewFactory = Callable[[Path, list[Slot], list[list[str]] | None, int, int], WorkerView]


@dataclass
class MultiResult:
    """How a multi-worker run ended, for the command to print."""

    games_done: int
    games_total: int
    this_run: int
    outcomes: Mapping[str, int]
    """Outcomes of the games this run played."""
    workers: list[str]
    deaths: int
    wall_s: float

    @property
    def complete(self) -> bool:
        return self.games_done == self.games_total


def run_multi_worker(
    config: RunConfig, manifest: Manifest, todo: list[GameSpec], done: int, view: ViewFactory
) -> MultiResult:
    """The `harness run games --gpus/--workers` path."""
    gpus = resolve_gpus(config.gpus) or [CPU]
    config = config.model_copy(update={"gpus": gpus})
    slots = make_slots(gpus)
    shares = [[s.game_id for s in share] for share in split_conditions(todo, len(slots))]
    run_dir = RunDir(config.out)
    launcher = ProcessLauncher(run_dir, n_cpu_workers=sum(s.gpu is None for s in slots))
    return run_and_report(launcher, slots, shares, config=config, manifest=manifest, done=done,
                          total=done + len(todo), view=view)


def run_and_report(launcher: Launcher, slots: list[Slot], shares: list[list[str]], *, config: RunConfig,
                   manifest: Manifest, done: int, total: int, view: ViewFactory) -> MultiResult:
    """Drive the workers with a live view; the result counts the games on disk afterwards."""
    run_dir = RunDir(config.out)
    used = [s for s, share in zip(slots, shares, strict=True) if share]
    t0 = time.time()
    with view(run_dir.events_path, slots, shares, done, total) as live:
        result = drive(
            launcher, slots, shares, config=config, run_id=manifest.run_id, say=live.say, tick=live.tick
        )
        live.tick()
    complete = run_dir.games().by_id()
    this_run = [complete[g] for share in shares for g in share if g in complete]
    outcomes = dict(Counter(str(g.outcome) for g in this_run))
    return MultiResult(done + len(this_run), total, len(this_run), outcomes, [describe(s.gpu) for s in used],
                       result.deaths, time.time() - t0)
