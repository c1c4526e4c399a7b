"""Worker processes: the condition split, the failure policy, GPU ids and child environments,
CPU workers end to end (scripted and the real SmolLM2), a SIGKILLed worker, and the Ray path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from harness.backends.devices import nvml_stats
from harness.cli import main
from harness.errors import BackendError, ConfigError
from harness.game.conditions import parse_condition_id
from harness.records import EVENT_ADAPTER, ErrorEvent, GameDoneEvent, ProgressEvent, RunStartEvent
from harness.run.runner import GameSpec
from harness.rundir.jsonl import close_torn_line
from harness.workers.gpus import resolve_gpus, worker_env
from harness.workers.ray_launcher import RAY_GPU, ray_slots
from harness.workers.scheduler import Scheduler, Slot, split_conditions

CONDITIONS = ["variable-L-GMP", "fixed-none-BASE", "variable-W-BASE", "fixed-L-G"]
SCRIPT = ["Final Decision: Bet $10", "Final Decision: Bet $5", "Final Decision: Stop"]


def specs(counts: dict[str, int]) -> list[GameSpec]:
    return [GameSpec(parse_condition_id(c), rep, 0) for c, n in counts.items() for rep in range(n)]


def scripted_config(tmp_path: Path, *, reps: int = 2, max_rounds: int = 5, concurrency: int = 8,
                    delay_s: float = 0.0) -> Path:
    path = tmp_path / "scripted.toml"
    path.write_text(f"""
seed = 3
repetitions = {reps}
concurrency = {concurrency}
out = "{tmp_path / 'run'}"
progress_interval_s = 0.1
[model]
name = "scripted"
path = "none"
[game]
max_rounds = {max_rounds}
[conditions]
ids = {json.dumps(CONDITIONS)}
[backend]
kind = "scripted"
script = {json.dumps(SCRIPT)}
script_delay_s = {delay_s}
""")
    return path


def game_lines(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "games.jsonl").read_text().splitlines()]


def events(run: Path) -> list:
    return [
        EVENT_ADAPTER.validate_json(line) for line in (run / "events.jsonl").read_text().splitlines() if line
    ]


def assert_one_line_per_game(run: Path, n: int) -> list[dict]:
    games = game_lines(run)
    ids = [g["game_id"] for g in games]
    assert len(ids) == n and len(set(ids)) == n, Counter(ids).most_common(3)
    return games


# --- the split (pure) ---------------------------------------------------------------------------


def test_split_keeps_conditions_whole_and_balances():
    plan = specs({c: 3 for c in CONDITIONS} | {"fixed-W-GMHWP": 3, "variable-none-M": 3})
    shares = split_conditions(plan, 4)
    assert sorted(len(s) for s in shares) == [3, 3, 6, 6]
    owner = {}
    for i, share in enumerate(shares):
        for s in share:
            assert owner.setdefault(s.condition.id, i) == i  # a condition never spans two workers
    assert sorted(s.game_id for share in shares for s in share) == sorted(s.game_id for s in plan)
    assert split_conditions(plan, 4) == shares  # deterministic
    for share in shares:  # plan order within a share
        assert share == [s for s in plan if s in share]


def test_split_balances_uneven_conditions_on_resume():
    plan = specs(
        {"variable-L-GMP": 7, "fixed-none-BASE": 1, "variable-W-BASE": 4, "fixed-L-G": 4, "fixed-W-M": 2}
    )
    sizes = sorted(len(s) for s in split_conditions(plan, 2))
    assert sizes == [9, 9]
    assert sorted(len(s) for s in split_conditions(plan, 3)) == [5, 6, 7]


def test_split_more_workers_than_conditions_and_bad_n():
    shares = split_conditions(specs({"fixed-L-G": 2}), 3)
    assert [len(s) for s in shares] == [2, 0, 0]
    with pytest.raises(ValueError):
        split_conditions([], 0)


# --- the failure policy (pure) ------------------------------------------------------------------


def test_scheduler_restarts_once_then_hands_games_to_a_survivor():
    s = Scheduler([["a1", "a2", "a3"], ["b1", "b2"]], max_restarts=1)
    assert s.initial() == [(0, ["a1", "a2", "a3"], 0), (1, ["b1", "b2"], 0)]
    assert s.on_exit(0, False, ["a2", "a3"]) == [(0, ["a2", "a3"], 1)]  # first death: restart
    assert s.on_exit(0, False, ["a3"]) == []  # second death: retired, b still busy
    assert s.orphans == ["a3"] and s.deaths == 2
    assert s.on_exit(1, True, []) == [(1, ["a3"], 2)]  # the survivor adopts it
    assert s.on_exit(1, True, []) == [] and not s.running and s.unfinished() == []


def test_scheduler_leaves_errored_games_and_reports_games_nobody_could_run():
    s = Scheduler([["a1"], ["b1"]], max_restarts=0)
    s.initial()
    assert s.on_exit(0, True, ["a1"]) == []  # finished with errors: not a crash, left for a resume
    assert s.on_exit(1, False, ["b1"]) == [(0, ["b1"], 1)]  # no restarts: straight to the idle survivor
    assert s.on_exit(0, False, ["b1"]) == []
    assert sorted(s.unfinished()) == ["a1", "b1"] and not s.running


def test_close_torn_line_ends_a_killed_writers_half_line(tmp_path):
    path = tmp_path / "games.jsonl"
    path.write_bytes(b'{"a": 1}\n{"game_id": "x", "rou')
    assert close_torn_line(path)
    with open(path, "ab") as f:
        f.write(b'{"b": 2}\n')
    assert path.read_bytes().splitlines()[-1] == b'{"b": 2}'
    assert not close_torn_line(path) and not close_torn_line(tmp_path / "missing.jsonl")


# --- GPU ids, environments, NVML --------------------------------------------------------------


def test_resolve_gpus():
    assert resolve_gpus("0, 2,3") == ["0", "2", "3"]
    assert resolve_gpus(["cpu", "cpu"]) == ["cpu", "cpu"]
    assert resolve_gpus("all", {"CUDA_VISIBLE_DEVICES": "2,3"}) == ["2", "3"]
    assert resolve_gpus(None) is None
    with pytest.raises(ConfigError, match="found no CUDA GPU"):
        resolve_gpus("all", {"CUDA_VISIBLE_DEVICES": ""})
    for bad, msg in [
        ("0,0", "named twice"), ("gpu1", "not a GPU id"), ("all,1", "cannot be combined"), ("", "empty")
    ]:
        with pytest.raises(ConfigError, match=msg):
            resolve_gpus(bad)


def test_worker_env_is_the_childs_own():
    before = dict(os.environ)
    base = {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1,2,3"}
    assert worker_env("2", base=base)["CUDA_VISIBLE_DEVICES"] == "2"
    cpu = worker_env(None, n_cpu_workers=2, base=base)
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and int(cpu["OMP_NUM_THREADS"]) >= 1
    assert worker_env(None, base={"OMP_NUM_THREADS": "7"})["OMP_NUM_THREADS"] == "7"
    assert base["CUDA_VISIBLE_DEVICES"] == "0,1,2,3" and dict(os.environ) == before


def test_nvml_stats(monkeypatch):
    import harness.backends.devices as gpu

    monkeypatch.setattr(gpu, "_nvml", False)
    assert nvml_stats("0") == {}

    class FakeNVML:
        def nvmlDeviceGetHandleByIndex(self, i):  # noqa: N802 - pynvml's names
            return i

        def nvmlDeviceGetMemoryInfo(self, h):  # noqa: N802
            return type("M", (), {"used": 3 * 2**30, "total": 80 * 2**30})()

        def nvmlDeviceGetUtilizationRates(self, h):  # noqa: N802
            return type("U", (), {"gpu": 97})()

    monkeypatch.setattr(gpu, "_nvml", FakeNVML())
    assert nvml_stats("3") == {
        "gpu_memory_used_mb": 3072.0, "gpu_memory_total_mb": 81920.0, "gpu_utilization": 97.0
    }


async def test_progress_events_of_a_gpu_worker_carry_nvml_stats(tmp_path, monkeypatch):
    import harness.run.worker_run as session
    from harness.backends.scripted import ScriptedBackend
    from harness.config import load_config
    from harness.run.runner import plan_games
    from harness.rundir.store import RunDir

    monkeypatch.setattr(
        session, "nvml_stats", lambda gpu: {"gpu_memory_used_mb": 1.0, "gpu_utilization": float(gpu)}
    )
    config = load_config(scripted_config(tmp_path, reps=1))
    RunDir(config.out).prepare(config.model_dump(mode="json"), 4)
    await session.run_worker(config, plan_games(config), run_id="r", worker=1, gpu="5",
                             backend=ScriptedBackend(SCRIPT, delay_s=0.03))
    progress = [e for e in events(Path(config.out)) if isinstance(e, ProgressEvent)]
    assert progress and all(p.gpu == "5" and p.worker == 1 and p.gpu_utilization == 5.0 for p in progress)
    assert progress[-1].games_total == 4


def test_ray_slots_and_install_hint(monkeypatch):
    assert ray_slots(None, 2) == [Slot(0, RAY_GPU), Slot(1, RAY_GPU)]
    assert ray_slots(["cpu"] * 3, 0) == [Slot(i, None) for i in range(3)]
    assert len(ray_slots(["0", "1"], 4)) == 2
    with pytest.raises(ConfigError, match="no GPU"):
        ray_slots(["all"], 0)
    with pytest.raises(ConfigError, match="cluster has 1"):
        ray_slots(["0", "1"], 1)
    monkeypatch.setitem(sys.modules, "ray", None)
    from harness.workers.ray_launcher import import_ray

    with pytest.raises(BackendError, match=r"gamble-harness\[ray\]"):
        import_ray()


# --- end to end ---------------------------------------------------------------------------------


def test_cpu_workers_scripted_split_and_resume(tmp_path, capsys):
    config = scripted_config(tmp_path)
    run = tmp_path / "run"
    assert main(["run", "games", "--config", str(config), "--workers", "2", "--quiet"]) == 0
    assert "8/8 games" in capsys.readouterr().out
    games = assert_one_line_per_game(run, 8)
    by_worker = {g["condition"]["id"]: g["worker"] for g in games}
    assert set(by_worker.values()) == {0, 1}
    assert all(by_worker[g["condition"]["id"]] == g["worker"] for g in games)  # whole conditions
    evs = events(run)
    assert {e.worker for e in evs if isinstance(e, RunStartEvent)} == {0, 1}
    assert all(e.gpu is None for e in evs)
    assert "CUDA_VISIBLE_DEVICES=''" in (run / "workers" / "worker-0.log").read_text()

    # resume with more repetitions and another worker count: only the new games run
    assert main(["run", "games", "--config", str(config), "--workers", "3", "--reps", "3", "--quiet"]) == 0
    assert "12/12 games (4 this run)" in capsys.readouterr().out
    assert_one_line_per_game(run, 12)


def test_gpu_workers_get_their_own_cuda_visible_devices(tmp_path, capsys):
    """Scripted GPU workers (no GPU needed): each child's environment names its GPU alone."""
    config = scripted_config(tmp_path, reps=1)
    run = tmp_path / "run"
    assert main(["run", "games", "--config", str(config), "--gpus", "5,7", "--quiet"]) == 0
    assert "CUDA_VISIBLE_DEVICES='5'" in (run / "workers" / "worker-0.log").read_text()
    assert "CUDA_VISIBLE_DEVICES='7'" in (run / "workers" / "worker-1.log").read_text()
    assert "CUDA_VISIBLE_DEVICES" not in os.environ or os.environ["CUDA_VISIBLE_DEVICES"] not in ("5", "7")
    games = assert_one_line_per_game(run, 4)
    assert {(g["worker"], g["gpu"]) for g in games} == {(0, "5"), (1, "7")}


def test_gpus_all_without_gpu_is_a_clear_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    config = scripted_config(tmp_path)
    assert main(["run", "games", "--config", str(config), "--gpus", "all"]) == 2
    assert "found no CUDA GPU" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    assert main(["run", "games", "--config", str(config), "--gpus", "0", "--workers", "2"]) == 2


def wait_for_worker(run: Path, worker: int, alive, timeout: float = 60) -> int:
    """The pid of `worker` (from its run_start) once it has finished a game."""
    deadline = time.time() + timeout
    while time.time() < deadline and alive():
        path = run / "events.jsonl"
        evs = [json.loads(x) for x in path.read_text().splitlines() if x] if path.exists() else []
        starts = [e["pid"] for e in evs if e["type"] == "run_start" and e["worker"] == worker]
        if starts and any(e["type"] == "game_done" and e["worker"] == worker for e in evs):
            return starts[0]
        time.sleep(0.02)
    raise AssertionError(f"worker {worker} never finished a game")


def assert_killed_worker_recovered(run: Path, out: str, label: str = "CPU") -> None:
    assert f"harness: worker 1 ({label}) died" in out and "restarting it once" in out
    assert "32/32 games" in out and "worker failures 1" in out
    evs = events(run)
    fatal = [e for e in evs if isinstance(e, ErrorEvent) and e.fatal]
    assert len(fatal) == 1 and fatal[0].worker == 1 and f"worker 1 ({label}) died" in fatal[0].message
    restarts = [e for e in evs if isinstance(e, RunStartEvent) and e.worker == 1]
    assert len(restarts) == 2 and restarts[1].resumed and restarts[1].games_already_done >= 1
    assert_one_line_per_game(run, 32)
    done = [e.game_id for e in evs if isinstance(e, GameDoneEvent)]
    assert len(set(done)) == 32


def test_sigkilled_worker_is_reported_and_its_games_rerun(tmp_path):
    config = scripted_config(tmp_path, reps=8, concurrency=2, delay_s=0.05)
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", "games", "--config", str(config),
                             "--quiet", "--workers", "2"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        os.kill(wait_for_worker(run, 1, lambda: proc.poll() is None), signal.SIGKILL)
    finally:
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, out
    assert_killed_worker_recovered(run, out)


@pytest.mark.model
def test_cpu_workers_with_the_real_model(tmp_path, smollm2_path, capsys):
    config = tmp_path / "smol.toml"
    config.write_text(f"""
seed = 5
out = "{tmp_path / 'run'}"
[model]
name = "SmolLM2-135M-Instruct"
path = "{smollm2_path}"
dtype = "float32"
[generation]
max_new_tokens = 16
[game]
max_rounds = 2
[guard]
max_retries = 0
[conditions]
ids = ["variable-W-BASE", "fixed-L-GM", "variable-L-BASE"]
[backend]
kind = "transformers"
device = "cpu"
""")
    assert main(["run", "games", "--config", str(config), "--workers", "2", "--quiet"]) == 0
    games = assert_one_line_per_game(tmp_path / "run", 3)
    assert {g["worker"] for g in games} == {0, 1}
    assert all(r["response"] is not None for g in games for r in g["rounds"] if not r["forced"])


def test_ray_gpu_actors_recover_from_a_killed_actor(tmp_path, capsys, monkeypatch):
    """One actor per (pretend) GPU of a local Ray; SIGKILL one actor's process mid-run."""
    ray = pytest.importorskip("ray")
    # Ray counts GPUs, the scripted backend needs none
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False)
    try:
        config = scripted_config(tmp_path, reps=8, concurrency=2, delay_s=0.05)
        run, rc = tmp_path / "run", []
        argv = ["run", "games", "--config", str(config), "--quiet", "--ray", "auto", "--gpus", "all"]
        thread = threading.Thread(target=lambda: rc.append(main(argv)))
        thread.start()
        try:
            os.kill(wait_for_worker(run, 1, thread.is_alive), signal.SIGKILL)
        finally:
            thread.join(120)
    finally:
        ray.shutdown()
    out = capsys.readouterr()
    text = out.out + out.err
    assert rc == [0], "\n".join(line for line in text.splitlines() if "raylet" not in line)[-3000:]
    assert "harness: worker 1 (GPU" in text and "a replacement starts on node" in text
    assert "32/32 games" in text and "worker failures 1" in text
    assert_one_line_per_game(run, 32)
    starts = [e for e in events(run) if isinstance(e, RunStartEvent)]
    assert {e.gpu for e in starts} <= {"0", "1"}  # Ray placed each actor and set its CUDA_VISIBLE_DEVICES
    assert {g["gpu"] for g in game_lines(run)} <= {"0", "1"}
