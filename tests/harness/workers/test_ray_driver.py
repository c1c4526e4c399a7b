"""The driver's failure policy against a cluster whose nodes the test decides: where a replacement
goes, and that a restart is not spent on a lost node before Ray has declared it dead. Ray's own
exceptions and scheduling strategies; a stand-in for the actors (the real ones are in
test_ray_cluster.py)."""

from __future__ import annotations

import pytest

from harness.config import load_config
from harness.rundir.store import RunDir
from harness.workers import ray_launcher
from harness.workers.pool import WorkPool
from harness.workers.ray_launcher import RayDriver
from harness.workers.scheduler import Slot
from tests.harness.workers.test_workers import scripted_config

ray = pytest.importorskip("ray")
A, B = "a" * 56, "b" * 56  # node ids: Ray's scheduling strategy wants real ones


class _Call:
    def remote(self, *args):
        return object()


class _Actor:
    def __getattr__(self, name):
        return _Call()


class _ActorClass:
    def __init__(self, started: list):
        self.started, self.opts = started, {}

    def options(self, **opts):
        self.opts = opts
        return self

    def remote(self, job):
        strategy = self.opts.get("scheduling_strategy")
        self.started.append(strategy.node_id if strategy is not None else None)
        return _Actor()


class Cluster:
    """What the driver asks of Ray: nodes (as `ray.nodes()` lists them), kill, get, remote."""

    exceptions = ray.exceptions

    def __init__(self, nodes: dict[str, float]):
        self.alive = {node: True for node in nodes}
        self.cpus = nodes
        self.started: list[str | None] = []

    def remote(self, **_):
        return lambda cls: _ActorClass(self.started)

    def nodes(self):
        return [{"NodeID": n, "Alive": self.alive[n], "Resources": {"CPU": c}} for n, c in self.cpus.items()]

    def kill(self, actor):
        pass

    def get(self, ref, timeout=None):
        raise ray.exceptions.RayActorError()  # a dead actor answers nothing


def driver(tmp_path, cluster: Cluster, workers: int, max_restarts: int = 2) -> RayDriver:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = load_config(scripted_config(tmp_path))
    workers_config = config.workers.model_copy(update={"max_restarts": max_restarts})
    config = config.model_copy(update={"workers": workers_config})
    RunDir(config.out).prepare(config.model_dump(mode="json"), 8)
    d = RayDriver(cluster, config, "r1", [Slot(i, None) for i in range(workers)], say=lambda m: None)
    d.pool = WorkPool([["g1"], ["g2"]], workers, fill=1, max_restarts=max_restarts)
    d.start_all()
    return d


def test_a_replacement_avoids_the_node_that_failed(tmp_path):
    cluster = Cluster({A: 2.0, B: 1.0})
    d = driver(tmp_path, cluster, 1)
    assert cluster.started == [A]  # the most room
    d._died(d.workers[0], ray.exceptions.RayActorError())
    assert cluster.started == [A, B] and d.pool.restarts_left == 1


def test_a_dead_process_on_the_only_node_is_replaced_there_at_once(tmp_path):
    cluster = Cluster({A: 1.0})
    d = driver(tmp_path, cluster, 1)
    d._died(d.workers[0], ray.exceptions.RayActorError())
    assert cluster.started == [A, A] and d.pool.restarts_left == 1


def test_a_lost_only_node_is_waited_for_and_no_restart_spent_until_ray_decides(tmp_path, monkeypatch):
    cluster = Cluster({A: 1.0})
    d = driver(tmp_path, cluster, 1)
    w = d.workers[0]
    d._died(w, ray.exceptions.NodeDiedError("node gone"))
    assert w.waiting is not None and cluster.started == [A] and d.pool.restarts_left == 2
    d._judge_waiting()  # Ray still lists the node alive: keep waiting
    assert w.waiting is not None and cluster.started == [A]
    cluster.alive[A] = False  # declared dead, and no other node: the worker stays down, restarts kept
    d._judge_waiting()
    assert w.waiting is None and not w.up and cluster.started == [A] and d.pool.restarts_left == 2

    cluster = Cluster({A: 1.0})
    d = driver(tmp_path / "again", cluster, 1)
    d._died(d.workers[0], ray.exceptions.NodeDiedError("node gone"))
    monkeypatch.setattr(ray_launcher, "NODE_VERDICT_S", 0.0)  # alive after the wait: it was the process
    d._judge_waiting()
    assert cluster.started == [A, A] and d.pool.restarts_left == 1


def test_no_replacement_once_the_restarts_are_spent(tmp_path):
    cluster = Cluster({A: 4.0})
    d = driver(tmp_path, cluster, 2, max_restarts=0)
    d._died(d.workers[1], ray.exceptions.RayActorError())
    assert cluster.started == [A, A] and not d.workers[1].up
    events = (tmp_path / "run" / "events.jsonl").read_text()
    assert "no replacement left (workers.max_restarts)" in events and '"status":"failed"' in events
