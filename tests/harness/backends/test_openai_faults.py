"""`harness run games` on the openai backend against real local servers that inject every transport
fault: every game is written once, transport retries are counted in the rounds, apart from the
guard's re-asks; a refusal is its own finish reason; an endpoint that dies mid-run loses nothing;
with every endpoint gone the run ends `failed` with one line naming them, and a rerun resumes."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path

from harness.cli import main
from harness.game.prompts import FOLLOW_UP
from harness.records import EndpointStats
from tests.harness.backends.fault_server import FaultServer

CONDITIONS = '["fixed-none-BASE", "variable-none-GMP", "fixed-none-GM", "variable-none-BASE"]'
TRANSPORT = {"429", "500", "503", "slow", "malformed", "reset"}


def _config(tmp_path: Path, urls: list[str], out: Path, reps: int = 3, extra: str = "") -> Path:
    path = tmp_path / "endpoint.toml"
    path.write_text(f"""
seed = 3
repetitions = {reps}
concurrency = 4
progress_interval_s = 0.2
out = "{out}"
[model]
name = "fault-model"
path = "fault-model"
style = "chat"
[generation]
max_new_tokens = 64
[game]
max_rounds = 4
[conditions]
grid = "64"
ids = {CONDITIONS}
[guard]
max_retries = 1
request_timeout_s = 0.6
[backend]
kind = "openai"
base_urls = {json.dumps(urls)}
structured_outputs = "none"
max_transport_retries = 10
{extra}
""")
    return path


def _games(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "games.jsonl").read_text().splitlines()]


def _events(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]


def _answer(body: dict) -> str:
    """A bet in the first round, then a stop (the follow-up turn is answered with a stop)."""
    last = body["messages"][-1]["content"]
    if last == FOLLOW_UP:
        return "Final Decision: Stop"
    if "Game History:" not in last:
        return "Final Decision: Bet $10"
    return "I would rather stop here.\nFinal Decision: Stop"


def test_every_fault_is_retried_counted_and_no_game_is_lost_or_doubled(tmp_path, capsys):
    schedule = {2: "429", 5: "500", 8: "503", 11: "slow", 14: "malformed", 17: "empty", 20: "reset",
                23: "refuse", 26: "429"}
    srv = FaultServer(faults=lambda n, body: schedule.get(n), answer=_answer, slow_s=1.2,
                      retry_after_s=0.2).start()
    try:
        out = tmp_path / "run"
        assert main(["run", "games", "--config", str(_config(tmp_path, [srv.url], out)), "--quiet"]) == 0
    finally:
        srv.stop()
    assert "transport retries 7" in capsys.readouterr().out
    games = _games(out)
    ids = [g["game_id"] for g in games]
    assert len(ids) == 12 and len(set(ids)) == 12
    rounds = [r for g in games for r in g["rounds"]]
    transport_faults = sum(srv.count(f) for f in TRANSPORT)
    assert sum(r["transport_retries"] for r in rounds) == transport_faults == 7
    assert sum(r["empty_retries"] for r in rounds) >= 1  # the empty content: a re-ask of the guard
    # the empty answer and the refusal were each asked again: re-asks of the guard, not transport retries
    assert sum(r["retries"] for r in rounds) >= srv.count("empty") + srv.count("refuse") == 2
    # every request the server answered is a model call some round counted, none twice
    assert len(srv.received) == srv.count("ok") + srv.count("empty") + srv.count("refuse") + transport_faults
    progress = [e for e in _events(out) if e["type"] == "progress"]
    assert progress and 0 < progress[-1]["transport_retries"] <= transport_faults
    stats = [EndpointStats(**s) for e in progress for s in e["endpoints"]]
    assert stats and all(s.url == srv.url for s in stats)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["served"] == {"model": "fault-model-2026", "system_fingerprint": "fp_test"}


def test_a_refused_answer_is_recorded_as_refused_not_empty(tmp_path):
    srv = FaultServer(faults=lambda n, body: "refuse").start()
    try:
        out = tmp_path / "run"
        main(["run", "games", "--config", str(_config(tmp_path, [srv.url], out, reps=1)), "--quiet"])
    finally:
        srv.stop()
    games = _games(out)
    assert len(games) == 4
    last = [g["rounds"][-1] for g in games]
    assert all(r["parse_kind"] == "refused" and r["finish_reason"] == "refused" for r in last)
    assert all(g["outcome"] == "invalid" and "refused" in g["invalid_reason"] for g in games)


def test_an_unreadable_answer_gets_one_follow_up_turn_on_a_server_that_cannot_constrain(tmp_path):
    def answer(body: dict) -> str:
        asked_again = body["messages"][-1]["content"] == FOLLOW_UP
        return "Final Decision: Stop" if asked_again else "Hmm, let me think."

    srv = FaultServer(answer=answer).start()
    try:
        out = tmp_path / "run"
        cfg = _config(tmp_path, [srv.url], out, reps=1).read_text().replace('structured_outputs = "none"',
                                                                              'structured_outputs = "auto"')
        (tmp_path / "auto.toml").write_text(cfg)
        assert main(["run", "games", "--config", str(tmp_path / "auto.toml"), "--quiet"]) == 0
    finally:
        srv.stop()
    for game in _games(out):
        last = game["rounds"][-1]
        assert last["parse_kind"] == "follow_up" and last["decision"] == "stop"
        assert last["extract_prompt"] == FOLLOW_UP and last["extract_response"] == "Final Decision: Stop"
        assert game["outcome"] == "stopped"
    follow_ups = [b for b in srv.received if b["messages"][-1]["content"] == FOLLOW_UP]
    assert len(follow_ups) == 4 and all(len(b["messages"]) == 3 for b in follow_ups)
    assert all("structured_outputs" not in b for b in follow_ups)


def test_constrained_mode_is_refused_where_the_server_cannot_constrain(tmp_path, capsys):
    srv = FaultServer().start()
    try:
        out = tmp_path / "run"
        cfg = _config(tmp_path, [srv.url], out, reps=1).read_text().replace('structured_outputs = "none"',
                                                                              'structured_outputs = "auto"')
        (tmp_path / "c.toml").write_text(cfg.replace("[game]", '[game]\ndecision = "constrained"'))
        assert main(["run", "games", "--config", str(tmp_path / "c.toml"), "--quiet"]) == 2
    finally:
        srv.stop()
    err = capsys.readouterr().err.strip().splitlines()
    assert any("game.decision" in line and "constrained" in line and srv.url in line for line in err)
    assert not (out / "games.jsonl").exists() or _games(out) == []


def test_an_endpoint_that_dies_mid_run_with_another_alive_loses_nothing(tmp_path):
    a = FaultServer(answer=_answer)
    b = FaultServer(answer=_answer)
    seen = itertools.count(1)  # requests over both endpoints

    def faults(n: int, body: dict) -> None:
        if next(seen) == 10:
            threading.Thread(target=a.stop).start()  # dies while requests are in flight
        return None

    a.faults = b.faults = faults
    a.start()
    b.start()
    try:
        out = tmp_path / "run"
        assert main(["run", "games", "--config", str(_config(tmp_path, [a.url, b.url], out)), "--quiet"]) == 0
    finally:
        b.stop()
    ids = [g["game_id"] for g in _games(out)]
    assert len(ids) == 12 and len(set(ids)) == 12
    assert len(b.received) > 0 and len(a.received) > 0
    assert len(a.received) + len(b.received) > 10  # a died before the run was over


def test_every_endpoint_gone_ends_failed_with_one_line_and_a_rerun_resumes(tmp_path, capsys):
    a, b = FaultServer(answer=_answer), FaultServer(answer=_answer)
    ports = [s.httpd.server_address[1] for s in (a, b)]
    urls = [a.url, b.url]

    seen = itertools.count(1)  # requests over both endpoints, whichever takes them

    def faults(n: int, body: dict) -> None:
        if next(seen) == 8:
            threading.Thread(target=lambda: (a.stop(), b.stop())).start()
        return None

    a.faults = b.faults = faults
    a.start()
    b.start()
    out = tmp_path / "run"
    config = _config(tmp_path, urls, out, extra="max_transport_retries = 3").read_text()
    config = config.replace("max_transport_retries = 10\n", "")
    (tmp_path / "down.toml").write_text(config)
    rc = main(["run", "games", "--config", str(tmp_path / "down.toml"), "--quiet"])
    assert rc != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and urls[0] in err[0] and urls[1] in err[0]
    ends = [e for e in _events(out) if e["type"] == "run_end"]
    assert ends[-1]["status"] == "failed"
    kept = [g["game_id"] for g in _games(out)]
    assert len(kept) < 12
    # the endpoints come back on the same addresses: the rerun plays only what is missing
    again = [FaultServer(answer=_answer, port=p).start() for p in ports]
    try:
        assert main(["run", "games", "--config", str(tmp_path / "down.toml"), "--quiet"]) == 0
    finally:
        for s in again:
            s.stop()
    ids = [g["game_id"] for g in _games(out)]
    assert len(ids) == 12 and len(set(ids)) == 12 and ids[:len(kept)] == kept
