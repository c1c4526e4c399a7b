"""Run directory: torn lines, manifest compatibility."""

import json

import pytest

from harness.errors import RunDirError
from harness.rundir.jsonl import repair_torn_tail
from harness.rundir.store import RunDir


def test_repair_torn_tail(tmp_path):
    p = tmp_path / "games.jsonl"
    p.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": 3')
    assert repair_torn_tail(p) == len(b'{"c": 3')
    assert p.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert repair_torn_tail(p) == 0
    p.write_bytes(b"no newline at all")
    repair_torn_tail(p)
    assert p.read_bytes() == b""
    assert repair_torn_tail(tmp_path / "missing.jsonl") == 0


def test_manifest_guards_results_affecting_settings(tmp_path):
    run = RunDir(tmp_path / "run")
    config = {"seed": 1, "model": {"name": "m"}, "generation": {}, "game": {}, "guard": {"max_retries": 5}}
    manifest = run.prepare(config, games_total=4)
    assert json.loads(run.manifest_path.read_text())["run_id"] == manifest.run_id
    again = run.prepare(config, games_total=8)
    assert again.run_id == manifest.run_id and again.games_total == 8 and again.resumes
    with pytest.raises(RunDirError, match="seed"):
        run.prepare(config | {"seed": 2}, games_total=4)
    with pytest.raises(RunDirError, match="guard.max_retries"):
        run.prepare(config | {"guard": {"max_retries": 1}}, games_total=4)
