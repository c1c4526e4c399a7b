"""Work pulled by Ray workers, and where a replacement goes: the pure parts of the Ray path."""

from __future__ import annotations

from collections import Counter

import pytest

from harness.config import RunConfig
from harness.errors import ConfigError
from harness.workers.pool import NodeView, WorkPool, choose_node, condition_batches, worker_needs
from harness.workers.ray_launcher import ray_slots, send_token, token_available, worker_run_config
from harness.workers.scheduler import Slot
from tests.harness.workers.test_workers import specs


def test_batches_are_conditions_in_plan_order_cut_to_size():
    plan = specs({"fixed-L-G": 2, "variable-W-BASE": 3})
    assert condition_batches(plan, 2) == [
        ["fixed-L-G-rep000", "fixed-L-G-rep001"],
        ["variable-W-BASE-rep000", "variable-W-BASE-rep001"],
        ["variable-W-BASE-rep002"],
    ]
    assert condition_batches(plan) == [
        ["fixed-L-G-rep000", "fixed-L-G-rep001"],
        [f"variable-W-BASE-rep00{i}" for i in range(3)],
    ]


def test_a_worker_is_handed_batches_until_it_holds_enough_games():
    pool = WorkPool([["a1", "a2"], ["b1", "b2"], ["c1"], ["d1"]], 2, fill=3, max_restarts=0)
    first = pool.take(0)
    assert [b.game_ids for b in first] == [["a1", "a2"], ["b1", "b2"]]  # 2 < 3, then 4
    assert pool.take(0) == []  # holds 4 >= 3
    assert [b.game_ids for b in pool.take(1)] == [["c1"], ["d1"]]
    pool.finished(0, first[0].id, [])
    assert pool.take(0) == [] and pool.busy  # nothing queued; b, c, d still held
    pool.finished(0, first[1].id, ["b2"])  # b2 errored: left for a resume, not replayed now
    assert pool.left == ["b2"]


def test_a_dead_workers_games_go_to_whichever_worker_asks_next():
    pool = WorkPool([["a1", "a2"], ["b1"], ["c1"]], 3, fill=1, max_restarts=1)
    a, b, c = pool.take(0)[0], pool.take(1)[0], pool.take(2)[0]
    assert pool.died(0, ["a2"]) == 1  # a1 was written before it died
    assert pool.take(0) == []  # a dead worker gets nothing
    pool.finished(2, c.id, [])
    assert [x.game_ids for x in pool.take(2)] == [["a2"]]  # the idle survivor adopts it
    assert pool.restart(0) and pool.restarts_left == 0
    assert not pool.restart(1)  # replacements are counted over the whole run
    pool.died(1, ["b1"])
    assert pool.unfinished() == ["b1"] and pool.busy  # no restart for worker 1: b1 waits in the queue
    assert [x.game_ids for x in pool.take(0)] == [["b1"]]
    assert a.id != b.id


NODES = [
    NodeView("head", True, {"CPU": 2.0}),
    NodeView("n2", True, {"CPU": 5.0, "GPU": 2.0}),
    NodeView("gone", False, {"CPU": 64.0}),
]


def test_the_node_with_most_room_that_has_not_failed():
    cpu = worker_needs(False)
    assert choose_node(NODES, cpu, Counter()) == "n2"  # 5 free against 2; the dead node never
    assert choose_node(NODES, cpu, Counter({"n2": 4})) == "head"  # 1 left against 2
    assert choose_node(NODES, cpu, Counter(), avoid={"n2"}) == "head"
    assert choose_node(NODES, cpu, Counter({"head": 2}), avoid={"n2"}) is None  # full: no place
    two_gpus = worker_needs(True, gpus_per_worker=2)
    assert two_gpus == {"GPU": 2.0}
    assert choose_node(NODES, two_gpus, Counter()) == "n2"
    assert choose_node(NODES, two_gpus, Counter({"n2": 1})) is None  # one worker of 2 GPUs fills it
    assert choose_node(NODES, worker_needs(False, custom={"big_disk": 1}), Counter()) is None
    assert worker_needs(True, custom={"big_disk": 1}) == {"GPU": 1.0, "big_disk": 1}


def test_workers_of_several_gpus():
    assert ray_slots(None, 8, gpus_per_worker=4) == [Slot(0, "?"), Slot(1, "?")]
    with pytest.raises(ConfigError, match="gpus_per_worker = 4, the cluster has 2 GPUs"):
        ray_slots(["all"], 2, gpus_per_worker=4)
    with pytest.raises(ConfigError, match="2 GPU workers of 4"):
        ray_slots(["0", "1"], 4, gpus_per_worker=4)
    base = dict(model={"name": "m", "path": "x"}, conditions={"ids": ["fixed-L-G"]})
    vllm = RunConfig.model_validate(base | {"backend": {"kind": "vllm"}, "workers": {"gpus_per_worker": 2}})
    assert worker_run_config(vllm).backend.engine_args == {"tensor_parallel_size": 2}
    clash = vllm.model_copy(
        update={"backend": vllm.backend.model_copy(update={"engine_args": {"tensor_parallel_size": 4}})}
    )
    with pytest.raises(ConfigError, match="tensor_parallel_size = 4 but workers.gpus_per_worker = 2"):
        worker_run_config(clash)


def test_the_driver_sends_a_token_it_has(tmp_path):
    assert not token_available({}, home=tmp_path)
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("t")
    assert token_available({}, home=tmp_path)
    env = {"RAY_AUTH_TOKEN": "t"}
    send_token("10.0.0.1:6379", env)
    assert env["RAY_AUTH_MODE"] == "token"
    env = {"RAY_AUTH_TOKEN": "t", "RAY_AUTH_MODE": "disabled"}
    send_token("10.0.0.1:6379", env)  # the user's choice stays
    assert env["RAY_AUTH_MODE"] == "disabled"
    env = {"RAY_AUTH_TOKEN": "t"}
    send_token("local", env)
    assert "RAY_AUTH_MODE" not in env
