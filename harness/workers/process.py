"""One worker process of a multi-GPU (or multi-CPU) run: `python -m harness.workers.process --job FILE|-`,
and `ProcessLauncher`, the parent's side of it (start with its own environment, watch, log).

The parent (`harness.workers.scheduler`, or a Ray actor in `harness.workers.ray_launcher`) hands it a
`WorkerJob`: the resolved config as JSON, the run id, its worker index and GPU, and the ids of its games.
It plays the ones not yet in games.jsonl into the shared run directory, through the same
`run_worker` as a single-process run. The parent has set CUDA_VISIBLE_DEVICES to this worker's
GPU alone (or "" for CPU), so the engine sees it as device `cuda`; events carry the physical id.

Exit codes: 0 all games complete, 75 some games failed (reported as error events, left for a
resume), anything else is a crash the parent reports and recovers from.

"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time

from pydantic import BaseModel, ConfigDict, Field

from harness.workers.gpus import worker_env

EXIT_INCOMPLETE = 75  # EX_TEMPFAIL: games errored, a rerun resumes them; not a crash


class WorkerJob(BaseModel):
    """What the parent passes a worker (JSON on stdin or in a file)."""

    model_config = ConfigDict(extra="forbid")

    config: dict = Field(description="The resolved RunConfig (model_dump(mode='json')).")
    run_id: str
    worker: int = Field(description="Worker index, unique within the run.")
    gpu: str | None = Field(description="Physical GPU id for events and NVML; None for a CPU worker.")
    game_ids: list[str] = Field(description="The games this worker owns (done ones are skipped).")
    already_done: int = Field(0, description="Games of this worker's share finished before (restarts).")


def worker_config(job: WorkerJob):
    """The config as the child must use it: device `cuda` (its one visible GPU) or `cpu`."""
    from harness.config import RunConfig

    config = RunConfig.model_validate(job.config)
    backend = config.backend.model_copy(update={"device": "cpu" if job.gpu is None else "cuda"})
    return config.model_copy(update={"backend": backend, "gpus": None})


async def run_job(job: WorkerJob):
    """Play the job's unfinished games; returns the session's WorkerResult."""
    from harness.run.runner import plan_games
    from harness.run.worker_run import run_worker
    from harness.rundir.reader import RunFiles

    config = worker_config(job)
    wanted = set(job.game_ids)
    done = RunFiles(config.out).done_ids()
    specs = [s for s in plan_games(config) if s.game_id in wanted and s.game_id not in done]
    already = job.already_done + len(wanted) - len(specs)
    return await run_worker(config, specs, run_id=job.run_id, already_done=already, worker=job.worker,
                            gpu=job.gpu)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, so no orphan keeps writing."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ProcessLauncher:
    """Workers as local child processes, each with its own environment; logs in RUN/workers/."""

    def __init__(self, run_dir, n_cpu_workers: int):
        self.log_dir = run_dir.path / "workers"
        self.n_cpu_workers = n_cpu_workers
        self.procs: dict[int, subprocess.Popen] = {}

    def start(self, slot, job: WorkerJob) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_dir / f"worker-{slot.index}.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "harness.workers.process", "--job", "-"],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                env=worker_env(slot.gpu, self.n_cpu_workers),
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        assert proc.stdin is not None
        try:
            proc.stdin.write(job.model_dump_json().encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died at once: poll() reports it
        self.procs[slot.index] = proc

    def _detail(self, index: int, rc: int) -> str:
        if rc < 0:
            return f"killed by {signal.Signals(-rc).name}"
        try:
            tail = (
                (self.log_dir / f"worker-{index}.log").read_text(errors="replace").strip().splitlines()[-1:]
            )
        except OSError:
            tail = []
        return f"exit code {rc}" + (f" ({tail[0][:300]})" if tail else "")

    def poll(self, timeout: float) -> list[tuple[int, bool, str]]:
        deadline = time.monotonic() + timeout
        while True:
            ended = [(i, p.returncode) for i, p in self.procs.items() if p.poll() is not None]
            if ended or time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        for i, _ in ended:
            del self.procs[i]
        return [(i, rc in (0, EXIT_INCOMPLETE), "ok" if rc == 0 else self._detail(i, rc)) for i, rc in ended]

    def stop(self) -> None:
        """After Ctrl-C (which reaches the children too) or a parent error: let the children
        write their run_end, then SIGTERM and SIGKILL what is left."""
        deadline = time.monotonic() + 5
        for proc in self.procs.values():
            for action, wait in (
                (None, max(deadline - time.monotonic(), 0.1)), (proc.terminate, 10), (proc.kill, None)
            ):
                if action:
                    action()
                try:
                    proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self.procs.clear()


def exit_code(status: str) -> int:
    return 0 if status == "complete" else EXIT_INCOMPLETE if status == "incomplete" else 1


def main(argv: list[str] | None = None) -> int:
    from harness.errors import HarnessError

    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m harness.workers.process", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--job", default="-", help="WorkerJob JSON file, or '-' for stdin (default).")
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.job == "-" else open(args.job).read()
    job = WorkerJob.model_validate(json.loads(text))
    print(f"worker {job.worker}: pid {os.getpid()}, gpu {job.gpu}, "
          f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}, {len(job.game_ids)} games",
          file=sys.stderr)
    try:
        result = asyncio.run(run_job(job))
    except HarnessError as e:
        print(f"harness worker {job.worker}: error: {e}", file=sys.stderr)
        return e.exit_code
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C reaches the whole process group
        print(f"worker {job.worker}: interrupted", file=sys.stderr)
        return 130
    print(f"worker {job.worker}: {result.games_done}/{result.games_total} games, status {result.status}",
          file=sys.stderr)
    return exit_code(result.status)


if __name__ == "__main__":
    sys.exit(main())
