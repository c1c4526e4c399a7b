"""Run lifecycle with real processes and real signals on the scripted backend: one writer per
run directory, prompt stop on Ctrl-C / SIGTERM, tolerant resume, a newer major version refused."""

from __future__ import annotations

import json
import signal
import time

from harness.records import read_event

from .lifecycle import events, interrupt, start_run, wait_for

SLOW_SCRIPTED = """
seed = 1
repetitions = 4
concurrency = 4
progress_interval_s = 0.2
[model]
name = "scripted"
path = "unused"
[conditions]
ids = ["fixed-W-GMP", "variable-L-BASE"]
[backend]
kind = "scripted"
script = ["Final Decision: Bet $10"]
script_delay_s = 0.3
"""

FAST_SCRIPTED = SLOW_SCRIPTED.replace("script_delay_s = 0.3", "script_delay_s = 0.0")


def _config(tmp_path, text: str):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return path


def _snapshot(out):
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


def test_second_process_on_a_run_dir_exits_2_and_writes_nothing(tmp_path):
    config, out = _config(tmp_path, SLOW_SCRIPTED), tmp_path / "run"
    first = start_run(config, out)
    try:
        wait_for(first, lambda: bool(events(out)), 60, "the first run's run_start")
        before = _snapshot(out)
        second = start_run(config, out)
        _, err = second.communicate(timeout=60)
        assert second.returncode == 2
        assert err.strip().count("\n") == 0, err
        assert str(out) in err and f"pid {first.pid}" in err
        after = _snapshot(out)
        for name in ("manifest.json", "run.lock"):
            assert after[name] == before[name]
        assert all(e["pid"] == first.pid for e in events(out) if e["type"] == "run_start")
    finally:
        first.kill()
        first.wait()


def test_a_sigkilled_holder_never_blocks(tmp_path):
    config, out = _config(tmp_path, SLOW_SCRIPTED), tmp_path / "run"
    first = start_run(config, out)
    wait_for(first, lambda: any(e["type"] == "game_done" for e in events(out)), 60, "a game done")
    first.send_signal(signal.SIGKILL)
    first.wait()
    again = start_run(_config(tmp_path, FAST_SCRIPTED), out)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    games = (out / "games.jsonl").read_text().splitlines()
    assert len({json.loads(g)["game_id"] for g in games}) == len(games) == 8


def test_sigint_stops_promptly_writes_interrupted_and_resume_finishes(tmp_path):
    config, out = _config(tmp_path, SLOW_SCRIPTED), tmp_path / "run"
    proc = start_run(config, out)
    wait_for(proc, lambda: any(e["type"] == "progress" and e["in_flight"] for e in events(out)), 60,
             "games in flight")
    seconds = interrupt(proc)
    err = proc.stderr.read()
    assert proc.returncode == 130, err
    assert seconds < 10, seconds
    end = read_event(json.dumps(events(out)[-1]))
    assert end.type == "run_end" and end.status == "interrupted"
    assert "rerun the same command to resume" in err
    again = start_run(_config(tmp_path, FAST_SCRIPTED), out)
    assert again.wait(timeout=60) == 0
    assert len((out / "games.jsonl").read_text().splitlines()) == 8


def test_sigterm_stops_like_ctrl_c(tmp_path):
    config, out = _config(tmp_path, SLOW_SCRIPTED), tmp_path / "run"
    proc = start_run(config, out)
    wait_for(proc, lambda: any(e["type"] == "progress" and e["in_flight"] for e in events(out)), 60,
             "games in flight")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130 and time.monotonic() - t0 < 10
    assert events(out)[-1]["status"] == "interrupted"


def test_lines_with_an_unknown_field_resume_without_replaying(tmp_path):
    config, out = _config(tmp_path, FAST_SCRIPTED), tmp_path / "run"
    assert start_run(config, out).wait(timeout=60) == 0
    games = out / "games.jsonl"
    lines = [
        json.loads(line) | {"added_by_a_newer_version": {"x": 1}} for line in games.read_text().splitlines()
    ]
    for line in lines:
        line["rounds"][0]["also_new"] = True
        line["schema_version"] = "2.9"  # a newer minor version is read as well
    games.write_text("".join(json.dumps(line) + "\n" for line in lines))
    before = games.read_bytes()
    again = start_run(config, out)
    stdout, err = again.communicate(timeout=60)
    assert again.returncode == 0, err
    assert "all 8 games already complete" in stdout
    assert games.read_bytes() == before


def test_a_newer_major_version_is_refused_with_one_line(tmp_path):
    config, out = _config(tmp_path, FAST_SCRIPTED), tmp_path / "run"
    assert start_run(config, out).wait(timeout=60) == 0
    games = out / "games.jsonl"
    lines = games.read_text().splitlines()
    newer = json.loads(lines[0]) | {"schema_version": "3.0"}
    games.write_text(json.dumps(newer) + "\n" + "\n".join(lines[1:]) + "\n")
    before = _snapshot(out)
    again = start_run(config, out)
    _, err = again.communicate(timeout=60)
    assert again.returncode == 2
    assert err.count("\n") == 1 and "schema version 3.0" in err and str(games) in err, err
    assert _snapshot(out)["games.jsonl"] == before["games.jsonl"]
