"""A Ray worker's session, in this process (no Ray): it plays what it is handed, keeps its game
lines, events and output for the driver, never touches the run directory; and the driver's writer
keeps each game once."""

from __future__ import annotations

import asyncio
import json
import os
import time

from harness.config import load_config
from harness.records import EVENT_ADAPTER
from harness.run.runner import plan_games
from harness.rundir.store import RunDir
from harness.workers.process import WorkerJob
from harness.workers.ray_actor import Drained, OutputCapture, WorkerSession
from harness.workers.ray_launcher import RunWriter
from tests.harness.workers.test_workers import scripted_config


def session_for(tmp_path, **kw) -> tuple[WorkerSession, list[str]]:
    config = load_config(scripted_config(tmp_path, **kw))
    job = WorkerJob(config=config.model_dump(mode="json"), run_id="r1", worker=3, gpu=None, game_ids=[])
    return WorkerSession(job, node_id="node-abc"), [s.game_id for s in plan_games(config)]


def test_a_session_plays_batches_and_keeps_everything_for_the_driver(tmp_path):
    session, ids = session_for(tmp_path, reps=3, concurrency=2)

    async def go() -> tuple[list[int], Drained, Drained]:
        opened = await session.open()
        assert opened.node_id == "node-abc" and opened.pid == os.getpid() and opened.gpu is None
        errors = await asyncio.gather(session.play(ids[:3]), session.play(ids[3:] + ["not-a-game"]))
        middle = session.drain()
        return list(errors), middle, await session.close()

    errors, middle, last = asyncio.run(go())
    assert errors == [0, 0]
    assert sorted(json.loads(line)["game_id"] for line in middle.games) == sorted(ids)
    assert last.games == []
    evs = [EVENT_ADAPTER.validate_json(line) for line in middle.events + last.events]
    assert [e.type for e in evs].count("game_done") == len(ids)
    assert evs[0].type == "run_start" and evs[-1].type == "run_end" and evs[-1].status == "complete"
    assert evs[-1].games_done == evs[-1].games_total == len(ids)
    assert all(e.worker == 3 and e.node_id == "node-abc" and e.run_id == "r1" for e in evs)
    assert not (tmp_path / "run").exists()  # the actor never touches --out


def test_a_stopped_session_ends_interrupted(tmp_path):
    session, ids = session_for(tmp_path, reps=4, concurrency=2, delay_s=0.2)

    async def go() -> Drained:
        await session.open()
        play = asyncio.ensure_future(session.play(ids))
        await asyncio.sleep(0.5)
        drained = await session.close("interrupted")
        assert play.cancelled() or play.done()
        return drained

    drained = asyncio.run(go())
    end = EVENT_ADAPTER.validate_json(drained.events[-1])
    assert end.type == "run_end" and end.status == "interrupted" and end.games_done < len(ids)


def test_output_of_the_process_is_captured_for_the_driver():
    """At the file descriptors, so an engine's own prints are kept too (and still go where they went)."""
    capture = OutputCapture().start()
    text = ""
    try:
        os.write(1, b"from fd 1\n")
        os.write(2, b"from fd 2\n")
        for _ in range(200):
            text += capture.take()
            if "from fd 2" in text:
                break
            time.sleep(0.01)
    finally:
        for fd, saved in capture._saved.items():
            os.dup2(saved, fd)
    assert text == "from fd 1\nfrom fd 2\n"


def test_the_driver_writes_each_game_once(tmp_path):
    session, ids = session_for(tmp_path, reps=1)
    run_dir = RunDir(tmp_path / "run")
    run_dir.prepare(load_config(tmp_path / "scripted.toml").model_dump(mode="json"), len(ids))

    async def go() -> Drained:
        await session.open()
        await session.play(ids)
        return await session.close()

    drained = asyncio.run(go())
    writer = RunWriter(run_dir, load_config(tmp_path / "scripted.toml"))
    writer.write(0, drained)
    writer.write(1, drained)  # a lost worker's copy of the same games: dropped, and their events
    lines = run_dir.games_path.read_text().splitlines()
    assert sorted(json.loads(x)["game_id"] for x in lines) == sorted(ids)
    done = [json.loads(x) for x in run_dir.events_path.read_text().splitlines()]
    assert sum(e["type"] == "game_done" for e in done) == len(ids)
    assert writer.by_worker == {0: len(ids)}
    assert RunWriter(run_dir, load_config(tmp_path / "scripted.toml")).written == set(ids)  # a resume
