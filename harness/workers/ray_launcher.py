"""Past one machine: the same workers as Ray actors, one per GPU of the cluster.

`harness run games --ray auto` runs on a cluster started with `ray start --head` /
`ray start --address HEAD:6379` (`--ray local` starts a throwaway one-machine Ray). Each actor
asks Ray for one GPU (`num_gpus=1`; Ray sets its CUDA_VISIBLE_DEVICES) and runs the worker code
of `harness.workers.process` in its own process; all of them append to the one run directory, which must
therefore be on a filesystem every node mounts at the same path. The split, the failure policy
(restart once, then hand the games to a survivor) and the reporting are those of
`harness.workers.scheduler`. See docs/workers.md.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from harness.config import RunConfig
from harness.errors import BackendError, ConfigError
from harness.run.runner import GameSpec
from harness.rundir.manifest import Manifest
from harness.workers.gpus import CPU
from harness.workers.process import EXIT_INCOMPLETE, WorkerJob
from harness.workers.ray_errors import explain_refused, ray_error_line
from harness.workers.scheduler import MultiResult, Slot, ViewFactory, run_and_report, split_conditions

RAY_GPU = "?"  # a GPU actor's id until Ray places it; the actor reports its own in its events


def import_ray():
    try:
        import ray
    except ImportError:
        raise BackendError("--ray needs the ray package: pip install 'gamble-harness[ray]'") from None
    return ray


def ray_slots(gpus: list[str] | None, cluster_gpus: int) -> list[Slot]:
    """Actors to start: one per cluster GPU (gpus None or ['all']), len(gpus) GPU actors for a
    list of ids (Ray picks the devices; only the count matters), N CPU actors for N 'cpu'."""
    if gpus is None or gpus == ["all"]:
        if cluster_gpus < 1:
            raise ConfigError("--ray: the cluster has no GPU; use --workers N for CPU actors")
        return [Slot(i, RAY_GPU) for i in range(cluster_gpus)]
    if all(g == CPU for g in gpus):
        return [Slot(i, None) for i in range(len(gpus))]
    if CPU in gpus:
        raise ConfigError("--ray: give GPU workers or CPU workers, not both")
    if len(gpus) > cluster_gpus:
        raise ConfigError(f"--ray: {len(gpus)} GPU workers asked, the cluster has {cluster_gpus} GPUs")
    return [Slot(i, RAY_GPU) for i in range(len(gpus))]


def shared_paths(config: RunConfig) -> RunConfig:
    """Absolute paths, since actors run in Ray's own working directory (on other nodes too)."""
    update: dict = {"out": str(Path(config.out).resolve())}
    if Path(config.model.path).exists():
        update["model"] = config.model.model_copy(update={"path": str(Path(config.model.path).resolve())})
    return config.model_copy(update=update)


def _actor_class(ray):
    @ray.remote(max_restarts=0)
    class WorkerActor:
        """Runs one WorkerJob in this actor's process (its GPU is the one Ray gave it)."""

        def gpu(self) -> str | None:
            ids = ray.get_gpu_ids()
            return str(ids[0]) if ids else None

        def run(self, job: dict) -> int:
            import asyncio

            from harness.rundir.manifest import manifest_path, read_manifest
            from harness.workers.process import exit_code, run_job

            worker_job = WorkerJob.model_validate(job).model_copy(update={"gpu": self.gpu()})
            if read_manifest(worker_job.config["out"]) is None:
                raise BackendError(f"{manifest_path(worker_job.config['out'])} is not visible on node "
                                   f"{socket.gethostname()}: --out must be on a filesystem shared by "
                                   "every node")
            return exit_code(asyncio.run(run_job(worker_job)).status)

    return WorkerActor


class RayLauncher:
    """The `harness.workers.Launcher` of Ray actors: a crashed or killed actor is a death."""

    def __init__(self, ray):
        self.ray = ray
        self.actor_cls = _actor_class(ray)
        self.running: dict = {}  # ObjectRef -> (slot index, actor)
        self.placing: dict = {}  # ObjectRef of actor.gpu() -> slot, for the GPU id in messages

    def start(self, slot: Slot, job: WorkerJob) -> None:
        opts = {"num_gpus": 1} if slot.gpu is not None else {"num_gpus": 0, "num_cpus": 1}
        env = {"CUDA_VISIBLE_DEVICES": ""} if slot.gpu is None else {}
        actor = self.actor_cls.options(**opts, runtime_env={"env_vars": env}).remote()
        if slot.gpu is not None:
            self.placing[actor.gpu.remote()] = slot  # an actor runs calls in order: this comes first
        self.running[actor.run.remote(job.model_dump(mode="json"))] = (slot.index, actor)

    def _placed(self) -> None:
        ready, _ = self.ray.wait(list(self.placing), num_returns=len(self.placing), timeout=0)
        for ref in ready:
            slot = self.placing.pop(ref)
            try:
                slot.gpu = self.ray.get(ref) or slot.gpu
            except self.ray.exceptions.RayError:
                pass

    def poll(self, timeout: float) -> list[tuple[int, bool, str]]:
        if not self.running:
            time.sleep(timeout)
            return []
        ready, _ = self.ray.wait(list(self.running), num_returns=len(self.running), timeout=timeout)
        if self.placing:
            self._placed()
        out = []
        for ref in ready:
            index, actor = self.running.pop(ref)
            try:
                rc = self.ray.get(ref)
                out.append((index, rc in (0, EXIT_INCOMPLETE), "ok" if rc == 0 else f"exit code {rc}"))
            except self.ray.exceptions.RayError as e:  # the worker's own line, not Ray's header
                out.append((index, False, ray_error_line(e)))
            self.ray.kill(actor)  # frees its GPU for a restart
        return out

    def stop(self) -> None:
        for _, actor in self.running.values():
            self.ray.kill(actor)
        self.running.clear()


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


def run_ray(config: RunConfig, manifest: Manifest, todo: list[GameSpec], done: int, *, address: str,
            view: ViewFactory) -> MultiResult:
    """The `harness run games --ray ADDRESS` path."""
    ray = import_ray()
    connected = connect(ray, address)
    try:
        slots = ray_slots(config.gpus, int(ray.cluster_resources().get("GPU", 0)))
        config = shared_paths(config)
        shares = [[s.game_id for s in share] for share in split_conditions(todo, len(slots))]
        return run_and_report(RayLauncher(ray), slots, shares, config=config, manifest=manifest, done=done,
                              total=done + len(todo), view=view)
    finally:
        if connected:
            ray.shutdown()
