"""The published formats: JSON Schemas a plain Draft 2020-12 validator can use, schema versions
(older and newer-minor lines read, newer major refused), the typed manifest, the run lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import pytest

from harness.errors import RunDirError
from harness.records import (
    SCHEMA_VERSION,
    RunEndEvent,
    SchemaVersionError,
    json_schemas,
    read_event,
    read_game,
)
from harness.rundir.lock import RunLock
from harness.rundir.manifest import Manifest, read_manifest, write_manifest
from tests.helpers import make_game

END = RunEndEvent(time=1.0, run_id="r", games_done=1, games_total=2, wall_s=3.0, status="interrupted")


def _validator(name: str):
    schema = json_schemas()[name]
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_a_plain_validator_names_the_failing_field():
    events = _validator("event.schema.json")
    assert not list(events.iter_errors(json.loads(END.model_dump_json())))
    bad = json.loads(END.model_dump_json()) | {"status": "bogus"}
    errors = list(events.iter_errors(bad))
    assert [e.json_path for e in errors] == ["$.status"]
    no_type = json.loads(END.model_dump_json())
    del no_type["type"]
    assert any("'type' is a required property" in e.message for e in events.iter_errors(no_type))
    game = json.loads(make_game([(10, False)], end="stop").model_dump_json())
    game["rounds"][0]["bet"] = "ten"
    assert [e.json_path for e in _validator("game.schema.json").iter_errors(game)] == ["$.rounds[0].bet"]


def test_type_is_required_in_every_schema():
    schemas = json_schemas()
    assert "type" in schemas["game.schema.json"]["required"]
    event = schemas["event.schema.json"]
    assert event["required"] == ["type"]
    assert all("type" in d["required"] for n, d in event["$defs"].items() if n.endswith("Event"))


def test_versions_older_and_newer_minor_read_newer_major_refused():
    line = json.loads(END.model_dump_json())
    assert line["schema_version"] == SCHEMA_VERSION
    assert read_event(json.dumps(line | {"schema_version": 1})).schema_version == "1.0"
    assert read_event(json.dumps(line | {"schema_version": "2.5", "new_field": [1]})).status == "interrupted"
    with pytest.raises(SchemaVersionError, match="schema version 3.0"):
        read_event(json.dumps(line | {"schema_version": "3.0"}))
    game = json.loads(make_game([(10, True)], end="stop").model_dump_json())
    game["rounds"][0]["later"] = {"x": 1}
    assert read_game(json.dumps(game)).rounds[0].bet == 10
    with pytest.raises(ValueError):  # writers stay strict
        RunEndEvent(**json.loads(END.model_dump_json()) | {"unknown": 1})


def test_manifest_is_typed_tolerant_and_refuses_newer_major(tmp_path):
    assert read_manifest(tmp_path) is None
    write_manifest(tmp_path, Manifest(run_id="abc", seed=3, config={"model": {"path": "p"}}))
    assert read_manifest(tmp_path).model_section() == {"path": "p"}
    (tmp_path / "manifest.json").write_text(
        json.dumps({"run_id": "x", "games_total": 6, "from_the_future": 1})
    )
    assert read_manifest(tmp_path).games_total == 6
    (tmp_path / "manifest.json").write_text(json.dumps({"run_id": "x", "schema_version": "9.0"}))
    with pytest.raises(SchemaVersionError, match="manifest.json"):
        read_manifest(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(RunDirError, match="manifest.json"):
        read_manifest(tmp_path)


def test_run_lock_names_the_holder_and_dies_with_it(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from harness.rundir.lock import RunLock; "
         f"RunLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunDirError, match=f"pid {holder.pid}"):
            RunLock(tmp_path).acquire()
    finally:
        holder.kill()
        holder.wait()
    with RunLock(tmp_path) as lock:
        assert (tmp_path / "run.lock").read_text().strip() == str(os.getpid())
        assert lock.path.exists()
