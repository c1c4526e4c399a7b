"""Past one machine: the workers as Ray actors, fed work as they free up, their results written by
the driver alone.

`harness run games --ray ADDRESS` (a cluster started with `ray start`; `--ray local` starts a
throwaway one-machine Ray) starts one actor per worker: one per cluster GPU (`workers.gpus_per_worker`
GPUs each), or N CPU actors for `--workers N`. Each actor (`harness.workers.ray_actor`) starts its
engine once and plays the condition batches the driver hands it (`harness.workers.pool.WorkPool`);
the driver drains the actors' finished games, events and output a few times a second and appends
them, under its run lock, to games.jsonl (fsynced per `run.durability`), events.jsonl and
RUN/workers/worker-N.log. So `--out` need exist only where the driver runs, and a game is written
once even if a lost worker had played it too.

A worker that dies (its process killed, its node lost, its engine failed) is told in the harness's
own words, its unfinished games go back to the queue for whichever worker asks next, and a
replacement starts (`workers.max_restarts` in all) on another node when one has room; when the
lost node was the only one with room, the driver first waits for Ray to declare it dead.
Ctrl-C asks every actor to stop (`workers.stop_grace_s`), writes what they return and each
worker's run_end "interrupted", then exits 130. See docs/workers.md.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import RunConfig
from harness.errors import BackendError, ConfigError
from harness.run.runner import GameSpec
from harness.rundir.events import EventWriter
from harness.rundir.files import WORKERS_DIR
from harness.rundir.jsonl import append_line
from harness.rundir.manifest import Manifest
from harness.rundir.store import RunDir
from harness.workers.gpus import CPU
from harness.workers.pool import Batch, NodeView, WorkPool, choose_node, condition_batches, worker_needs
from harness.workers.process import WorkerJob
from harness.workers.ray_actor import Drained, Opened, actor_class
from harness.workers.ray_errors import explain_refused, ray_error_line
from harness.workers.scheduler import MultiResult, Slot, ViewFactory, describe

RAY_GPU = "?"  # a GPU actor's id until Ray places it; the actor reports its own in its events
NODE_VERDICT_S = 60.0  # how long a replacement waits for Ray to declare its lost node dead
DRAIN_TIMEOUT_S = 10.0  # a drain of a worker that has just finished or failed
UNPLACED_S = 120.0  # an actor not started by then is told about (no room in the cluster?)


def import_ray():
    try:
        import ray
    except ImportError:
        raise BackendError("--ray needs the ray package: pip install 'gamble-harness[ray]'") from None
    return ray


def ray_slots(gpus: list[str] | None, cluster_gpus: int, gpus_per_worker: int = 1) -> list[Slot]:
    """Actors to start: one per `gpus_per_worker` cluster GPUs (gpus None or ['all']), len(gpus)
    GPU actors for a list of ids (Ray picks the devices; only the count matters), N CPU actors for
    N 'cpu'."""
    if gpus is None or gpus == ["all"]:
        if cluster_gpus < gpus_per_worker:
            raise ConfigError(
                "--ray: the cluster has no GPU; use --workers N for CPU actors"
                if cluster_gpus < 1
                else f"--ray: workers.gpus_per_worker = {gpus_per_worker}, the cluster has "
                f"{cluster_gpus} GPUs"
            )
        return [Slot(i, RAY_GPU) for i in range(cluster_gpus // gpus_per_worker)]
    if all(g == CPU for g in gpus):
        return [Slot(i, None) for i in range(len(gpus))]
    if CPU in gpus:
        raise ConfigError("--ray: give GPU workers or CPU workers, not both")
    if len(gpus) * gpus_per_worker > cluster_gpus:
        raise ConfigError(
            f"--ray: {len(gpus)} GPU workers of {gpus_per_worker} asked, the cluster has {cluster_gpus} GPUs"
        )
    return [Slot(i, RAY_GPU) for i in range(len(gpus))]


def worker_run_config(config: RunConfig) -> RunConfig:
    """The config the actors get: the model by absolute path when it is a local one (actors run in
    Ray's own working directory), and a vLLM engine split over a worker's GPUs when it holds several."""
    update: dict = {}
    if Path(config.model.path).exists():
        update["model"] = config.model.model_copy(update={"path": str(Path(config.model.path).resolve())})
    n = config.workers.gpus_per_worker
    if n > 1 and config.backend.kind == "vllm":
        asked = config.backend.engine_args.get("tensor_parallel_size", n)
        if asked != n:
            raise ConfigError(
                f"backend.engine_args.tensor_parallel_size = {asked} but workers.gpus_per_worker "
                f"= {n}: a worker's engine spans its GPUs"
            )
        engine_args = config.backend.engine_args | {"tensor_parallel_size": n}
        update["backend"] = config.backend.model_copy(update={"engine_args": engine_args})
    return config.model_copy(update=update)


def cluster_nodes(ray) -> list[NodeView]:
    return [
        NodeView(
            n["NodeID"], bool(n["Alive"]), dict(n.get("Resources", {})), n.get("NodeManagerHostname", "")
        )
        for n in ray.nodes()
    ]


class RunWriter:
    """The driver's appends: game lines once each (fsynced as the run asks), events, worker logs."""

    def __init__(self, run_dir: RunDir, config: RunConfig):
        self.run_dir = run_dir
        self.fsync = config.run.durability == "fsync"
        self.written = run_dir.done_ids()
        self.by_worker: Counter[int] = Counter()
        self._dropped: set[str] = set()  # game ids played twice (a lost worker's): their events too
        self.log_dir = run_dir.path / WORKERS_DIR
        self.log_dir.mkdir(parents=True, exist_ok=True)

    def log(self, worker: int, text: str) -> None:
        if text:
            append_line(self.log_dir / f"worker-{worker}.log", text.encode())

    def write(self, worker: int, drained: Drained) -> None:
        new: list[str] = []
        for line, game_id in zip(drained.games, drained.game_ids, strict=True):
            if game_id in self.written:
                self._dropped.add(game_id)
                continue
            self.written.add(game_id)
            self.by_worker[worker] += 1
            new.append(line)
        if new:
            append_line(
                self.run_dir.games_path, "".join(f"{line}\n" for line in new).encode(), fsync=self.fsync
            )
        events = [e for e in drained.events if not self._duplicate_event(e)]
        if events:
            append_line(self.run_dir.events_path, "".join(f"{line}\n" for line in events).encode())
        self.log(worker, drained.log)
        if drained.served:
            self.run_dir.note_served(drained.served)

    def _duplicate_event(self, line: str) -> bool:
        if not self._dropped or '"game_done"' not in line:
            return False
        return json.loads(line).get("game_id") in self._dropped

    def unwritten(self, ids: list[str]) -> list[str]:
        return [g for g in ids if g not in self.written]


@dataclass
class _Worker:
    """One worker's current actor, as the driver sees it."""

    slot: Slot
    actor: Any = None  # a Ray ActorHandle
    target: str | None = None  # the node it was pinned to
    opened: Opened | None = None
    open_ref: object = None
    drain_ref: object = None
    plays: dict = field(default_factory=dict)  # ObjectRef of play() -> Batch
    settling: dict = field(default_factory=dict)  # ObjectRef of the drain after a play returned -> Batch
    started: float = 0.0
    waiting: tuple[str, float] | None = None  # (lost node, since): a replacement awaits Ray's verdict
    told_unplaced: bool = False  # the driver said this actor waits for Ray to place it
    up: bool = False

    @property
    def node(self) -> str | None:
        return self.opened.node_id if self.opened else self.target


class RayDriver:
    """Starts the actors, hands out batches, drains and writes, and applies the failure policy."""

    def __init__(
        self, ray, config: RunConfig, run_id: str, slots: list[Slot], *, say=print, tick=lambda: None
    ):
        self.ray, self.config, self.run_id = ray, config, run_id
        self.say, self.tick = say, tick
        self.run_dir = RunDir(config.out)
        self.out = RunWriter(self.run_dir, config)
        self.actor_cls = actor_class(ray)
        self.workers = [_Worker(slot) for slot in slots]
        gpu = any(s.gpu is not None for s in slots)
        self.need = worker_needs(gpu, config.workers.gpus_per_worker, config.workers.ray_resources)
        self.failed_nodes: set[str] = set()
        self.deaths = 0
        self.config_json = worker_run_config(config).model_dump(mode="json")

    # --- actors -------------------------------------------------------------------------------

    def _in_use(self) -> Counter[str]:
        return Counter(w.node for w in self.workers if w.up and w.node)

    def _start(self, w: _Worker, node: str | None) -> None:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        opts: dict = {"num_cpus": self.need.get("CPU", 0), "num_gpus": self.need.get("GPU", 0)}
        custom = {k: v for k, v in self.need.items() if k not in ("CPU", "GPU")}
        if custom:
            opts["resources"] = custom
        env = {"PYTHONUNBUFFERED": "1"} | ({"CUDA_VISIBLE_DEVICES": ""} if w.slot.gpu is None else {})
        if node is not None:
            opts["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
        job = WorkerJob(
            config=self.config_json, run_id=self.run_id, worker=w.slot.index, gpu=w.slot.gpu, game_ids=[]
        )
        w.actor = self.actor_cls.options(**opts, runtime_env={"env_vars": env}).remote(
            job.model_dump(mode="json")
        )
        w.target, w.opened, w.plays, w.settling, w.drain_ref = node, None, {}, {}, None
        w.open_ref = w.actor.open.remote()
        w.started, w.waiting, w.up = time.time(), None, True
        where = f" on node {node[:12]}" if node else ""
        self.out.log(w.slot.index, f"--- harness: worker {w.slot.index} started{where} at {time.ctime()}\n")

    def start_all(self) -> None:
        nodes = cluster_nodes(self.ray)
        for w in self.workers:
            self._start(w, choose_node(nodes, self.need, self._in_use()))

    def _give(self, w: _Worker) -> None:
        for batch in self.pool.take(w.slot.index):
            w.plays[w.actor.play.remote(batch.game_ids)] = batch

    def _drain_now(self, w: _Worker, method: str = "drain", *args) -> bool:
        """Call drain (or close/stop) and write what comes back; False when the actor can't answer."""
        try:
            drained = self.ray.get(getattr(w.actor, method).remote(*args), timeout=DRAIN_TIMEOUT_S)
        except (self.ray.exceptions.RayError, self.ray.exceptions.GetTimeoutError):
            return False
        self.out.write(w.slot.index, Drained.model_validate(drained))
        return True

    # --- the loop -----------------------------------------------------------------------------

    def _step(self, timeout: float) -> None:
        live = [w for w in self.workers if w.up]
        for w in live:
            if w.opened is not None and w.drain_ref is None:
                w.drain_ref = w.actor.drain.remote()
        refs = {}
        for w in live:
            for ref in [w.open_ref, w.drain_ref, *w.plays, *w.settling]:
                if ref is not None:
                    refs[ref] = w
        if not refs:
            time.sleep(timeout)
            return
        ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
        for ref in ready:
            w = refs[ref]
            if not w.up:
                continue  # died earlier in this step
            if ref is w.drain_ref:
                w.drain_ref = None
                try:
                    self.out.write(w.slot.index, Drained.model_validate(self.ray.get(ref)))
                except self.ray.exceptions.RayError as e:
                    self._died(w, e)
            elif ref is w.open_ref:
                w.open_ref = None
                try:
                    w.opened = Opened.model_validate(self.ray.get(ref))
                except self.ray.exceptions.RayError as e:
                    self._died(w, e)
                    continue
                if w.opened.gpu is not None:
                    w.slot.gpu = w.opened.gpu
                self._give(w)
            elif ref in w.plays:
                try:
                    self.ray.get(ref)
                except self.ray.exceptions.RayError as e:
                    self._died(w, e)  # the batch is still held: its unwritten games go back to the queue
                    continue
                # Its last games are in the actor until drained: a drain sent now (after every earlier
                # call) settles the batch, and the worker's death before it requeues it.
                w.settling[w.actor.drain.remote()] = w.plays.pop(ref)
            elif ref in w.settling:
                try:
                    drained = Drained.model_validate(self.ray.get(ref))
                except self.ray.exceptions.RayError as e:
                    self._died(w, e)
                    continue
                self.out.write(w.slot.index, drained)
                batch: Batch = w.settling.pop(ref)
                self.pool.finished(w.slot.index, batch.id, self.out.unwritten(batch.game_ids))
                self._give(w)
        self._idle_workers_take()
        self._judge_waiting()
        self._tell_unplaced()

    def _tell_unplaced(self) -> None:
        """Say once when an actor has waited long for Ray to place it (the cluster lacks room)."""
        for w in self.workers:
            if w.up and w.opened is None and not w.told_unplaced and time.time() - w.started > UNPLACED_S:
                w.told_unplaced = True
                need = ", ".join(f"{k} {v:g}" for k, v in self.need.items())
                self.say(f"harness: worker {w.slot.index} has waited {UNPLACED_S:.0f} s for Ray to place it "
                         f"(it needs {need}; the cluster has {self.ray.available_resources()} free); the "
                         "others go on")

    def _idle_workers_take(self) -> None:
        """A batch back in the queue (a lost worker's) goes to whichever live worker has room."""
        for w in self.workers:
            if w.up and w.opened is not None and self.pool.queue:
                self._give(w)

    def _node_lost(self, error: BaseException) -> bool:
        """Whether the worker's node itself may be gone (not only its process)."""
        exc = self.ray.exceptions
        return isinstance(error, (exc.ActorUnavailableError, exc.NodeDiedError)) or "node has died" in str(
            error
        )

    def _died(self, w: _Worker, error: BaseException) -> None:
        detail, node_lost = ray_error_line(error), self._node_lost(error)
        index = w.slot.index
        self.deaths += 1
        if not node_lost:  # an engine that raised leaves its actor alive: keep its last lines
            self._drain_now(w)
        try:
            self.ray.kill(w.actor)
        except self.ray.exceptions.RayError:
            pass
        held = [g for b in [*w.plays.values(), *w.settling.values()] for g in b.game_ids]
        unfinished = self.out.unwritten(held)
        self.pool.died(index, unfinished)
        w.up, w.plays, w.settling, w.drain_ref, w.open_ref = False, {}, {}, None, None
        node = w.node
        if node:
            self.failed_nodes.add(node)
        where = (
            describe(w.slot.gpu)
            + (f" on {w.opened.host}" if w.opened else "")
            + (f", node {node[:12]}" if node else "")
        )
        gpu, started = w.slot.gpu, w.started
        fate = self._replace(w, node, node_lost)
        message = (
            f"worker {index} ({where}) died: {detail}; {len(unfinished)} unfinished games back in the "
            f"queue; {fate}"
        )
        self.say(f"harness: {message}")
        self.out.log(index, f"--- harness: {message}\n")
        events = EventWriter(
            self.run_dir.events_path, run_id=self.run_id, worker=index, gpu=gpu, node_id=node
        )
        events.error(message, fatal=True)
        done = self.out.by_worker[index]
        events.run_end(
            "failed", games_done=done, games_total=done + len(unfinished), wall_s=time.time() - started
        )

    def _replace(self, w: _Worker, lost: str | None, node_lost: bool) -> str:
        """Start a replacement now (on a node that has not failed if one has room; on the same node
        when only the process died), wait for Ray's verdict on a lost node, or give up; says which."""
        if self.pool.restarts_left < 1:
            return "no replacement left (workers.max_restarts)"
        nodes = cluster_nodes(self.ray)
        node = choose_node(nodes, self.need, self._in_use(), avoid=self.failed_nodes)
        if node is None and lost is not None and not node_lost:
            node = choose_node(nodes, self.need, self._in_use(), avoid=self.failed_nodes - {lost})
        if node is not None:
            self.pool.restart(w.slot.index)
            self._start(w, node)
            return f"a replacement starts on node {node[:12]}"
        if lost is not None and any(n.node_id == lost and n.alive for n in nodes):
            w.waiting = (lost, time.time())
            return f"no other node has room: waiting for Ray to declare node {lost[:12]} dead or alive"
        return "no node has room for a replacement"

    def _judge_waiting(self) -> None:
        waiting = [w for w in self.workers if w.waiting is not None]
        if not waiting:
            return
        nodes = cluster_nodes(self.ray)
        for w in waiting:
            assert w.waiting is not None
            lost, since = w.waiting
            alive = any(n.node_id == lost and n.alive for n in nodes)
            if alive and time.time() - since < NODE_VERDICT_S:
                continue
            w.waiting = None
            node = choose_node(nodes, self.need, self._in_use(), avoid=set() if alive else {lost})
            if node is None or not self.pool.restart(w.slot.index):
                self.say(
                    f"harness: worker {w.slot.index}: node {lost[:12]} "
                    f"{'still alive' if alive else 'declared dead'}, no node has room: the worker stays down"
                )
                continue
            self.say(
                f"harness: worker {w.slot.index}: node {lost[:12]} "
                f"{'still alive' if alive else 'declared dead'}; a replacement starts on node {node[:12]}"
            )
            self._start(w, node)

    def run(self, todo: list[GameSpec]) -> list[str]:
        """Play `todo` to the end; returns the games no worker finished."""
        # Batches of at most `concurrency` games; a worker holds two batches' worth, so the next one
        # is already there when a game of the current one ends (the session's semaphore keeps the
        # games in flight at `concurrency`).
        size = max(self.config.concurrency, 1)
        self.pool = WorkPool(
            condition_batches(todo, size),
            len(self.workers),
            fill=2 * size,
            max_restarts=self.config.workers.max_restarts,
        )
        self.start_all()
        try:
            with interrupt_on_sigterm():
                while self.pool.busy and any(w.up or w.waiting for w in self.workers):
                    self._step(0.25)
                    self.tick()
        except KeyboardInterrupt:
            self.stop()
            raise
        self.close()
        return self.pool.unfinished()

    def close(self) -> None:
        """The work is done (or no worker is left): end every session and free its resources."""
        for w in self.workers:
            if w.up and w.opened is not None:
                self._drain_now(w, "close")
            self._kill(w)

    def stop(self) -> None:
        """Ctrl-C: each actor cancels its games and writes run_end "interrupted"; one that does not
        answer within workers.stop_grace_s gets its run_end from the driver."""
        refs = {w.actor.close.remote("interrupted"): w for w in self.workers if w.up and w.opened is not None}
        ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=self.config.workers.stop_grace_s)
        answered = set()
        for ref in ready:
            try:
                self.out.write(refs[ref].slot.index, Drained.model_validate(self.ray.get(ref)))
                answered.add(refs[ref].slot.index)
            except self.ray.exceptions.RayError:
                pass
        for w in self.workers:
            if w.up and w.slot.index not in answered:
                done = self.out.by_worker[w.slot.index]
                EventWriter(
                    self.run_dir.events_path,
                    run_id=self.run_id,
                    worker=w.slot.index,
                    gpu=w.slot.gpu,
                    node_id=w.node,
                ).run_end("interrupted", games_done=done, games_total=done, wall_s=time.time() - w.started)
            self._kill(w)

    def _kill(self, w: _Worker) -> None:
        if w.actor is not None:
            try:
                self.ray.kill(w.actor)
            except self.ray.exceptions.RayError:
                pass
        w.up = False


def token_available(env=os.environ, home: Path | None = None) -> bool:
    """A Ray auth token this driver can send: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token."""
    home = home or Path.home()
    return bool(
        env.get("RAY_AUTH_TOKEN")
        or env.get("RAY_AUTH_TOKEN_PATH")
        or (home / ".ray" / "auth_token").is_file()
    )


@contextmanager
def interrupt_on_sigterm():
    """SIGTERM stops the run as Ctrl-C does (actors asked to stop, run_end written), not at once."""

    def handler(signum, frame):
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def send_token(address: str, env=os.environ) -> None:
    """With a token at hand and RAY_AUTH_MODE unset, make this driver send it (Ray >= 2.60 heads
    started with `ray start --head` require it; a cluster without authentication accepts it too).
    Before `import ray`: Ray reads the mode when it loads."""
    if address != "local" and "RAY_AUTH_MODE" not in env and token_available(env):
        env["RAY_AUTH_MODE"] = "token"


def connect(ray, address: str) -> bool:
    """Connect (True), or use the connection this process already has (False)."""
    if ray.is_initialized():
        return False
    try:
        if address == "local":
            ray.init(address="local", include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise BackendError(explain_refused(address, e)) from None
    return True


def run_ray(
    config: RunConfig, manifest: Manifest, todo: list[GameSpec], done: int, *, address: str, view: ViewFactory
) -> MultiResult:
    """The `harness run games --ray ADDRESS` path."""
    send_token(address)
    ray = import_ray()
    connected = connect(ray, address)
    try:
        slots = ray_slots(
            config.gpus, int(ray.cluster_resources().get("GPU", 0)), config.workers.gpus_per_worker
        )
        run_dir = RunDir(config.out)
        t0 = time.time()
        with view(run_dir.events_path, slots, None, done, done + len(todo)) as live:
            driver = RayDriver(ray, config, manifest.run_id, slots, say=live.say, tick=live.tick)
            driver.run(todo)
            live.tick()
        wanted = {s.game_id for s in todo}
        this_run = [g for g in run_dir.games().by_id().values() if g.game_id in wanted]
        outcomes = dict(Counter(str(g.outcome) for g in this_run))
        return MultiResult(
            done + len(this_run),
            done + len(todo),
            len(this_run),
            outcomes,
            [describe(s.gpu) for s in slots],
            driver.deaths,
            time.time() - t0,
        )
    finally:
        if connected:
            ray.shutdown()
