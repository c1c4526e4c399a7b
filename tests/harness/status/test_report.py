"""`harness status` on real files: a study directory whose games are played by real `harness run games`
subprocesses (scripted backend), with the experiment records appended as the study runner does, and
the issue's test: a worker stopped with SIGSTOP is reported stalled within the window."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jsonschema
import pytest

from harness.cli import main
from harness.status.model import StudyStatus, status_json_schema
from harness.study.layout import ExperimentEvent, StudyDir

DOCS = Path(__file__).resolve().parents[3] / "docs"

GAMES_TOML = """
seed = 3
repetitions = 2
progress_interval_s = 0.2
[model]
name = "scripted"
path = "none"
[game]
max_rounds = {max_rounds}
[conditions]
ids = ["fixed-L-BASE", "variable-L-GMP"]
[backend]
kind = "scripted"
script_delay_s = {delay}
script = ["Final Decision: Bet $50", "Final Decision: Stop", "Final Decision: Bet $10"]
"""

STUDY_TOML = """
name = "status-test"
stall_minutes = 5

[[experiment]]
name = "games-a"
kind = "games"
config = "fast.toml"

[[experiment]]
name = "games-b"
kind = "games"
config = "slow.toml"

[[experiment]]
name = "analyze"
kind = "analyze"
runs = ["games-a", "games-b"]
"""


def harness_status(capsys, *args: str) -> tuple[int, str, str]:
    """`harness status ARGS` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    rc = main(["status", *args])
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.fixture
def study(tmp_path) -> StudyDir:
    root = tmp_path / "study"
    root.mkdir()
    (root / "study.toml").write_text(STUDY_TOML)
    (root / "fast.toml").write_text(GAMES_TOML.format(max_rounds=5, delay=0.0))
    (root / "slow.toml").write_text(GAMES_TOML.replace("Stop", "Bet $5").format(max_rounds=100, delay=1.0))
    (root / "logs").mkdir()
    return StudyDir(root)


def run_experiment(study: StudyDir, name: str, config: str) -> None:
    """Run a games experiment to the end as the study runner would: records, log, its folder, a
    `harness run games` subprocess."""
    command = ["run", "games", "--config", str(study.path / config), "--out", str(study.path / name),
               "--quiet"]
    with open(study.log_path(name), "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "harness", *command], stdout=log, stderr=log)
        study.append(ExperimentEvent(experiment=name, kind="games", state="running", command=command,
                                     pid=proc.pid, devices=["cpu"]))
        assert proc.wait(timeout=120) == 0
    study.append(ExperimentEvent(experiment=name, kind="games", state="complete", command=command,
                                 returncode=0, devices=["cpu"]))


def rows(markdown: str) -> dict[str, list[str]]:
    """The summary table's rows by experiment name."""
    table = markdown.split("\n## ")[0]
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return {r[0]: r for r in cells[1:]}


def test_study_report_from_real_runs(study, capsys):
    run_experiment(study, "games-a", "fast.toml")
    log = "loading\nTraceback (most recent call last):\nRuntimeError: no engine\n"
    study.log_path("games-b").write_text(log)
    study.append(ExperimentEvent(experiment="games-b", kind="games", state="failed", returncode=3,
                                 note="exit 3"))
    before = sorted(p.name for p in study.path.iterdir())
    rc, md, err = harness_status(capsys, str(study.path))
    assert rc == 0, err
    assert sorted(p.name for p in study.path.iterdir()) == before  # the command only reads
    out = study.path.parent / "report-elsewhere"
    rc, again, err = harness_status(capsys, str(study.path), "--out", str(out))
    assert rc == 0, err
    assert md == again == (out / "status.md").read_text()
    table = rows(md)
    assert list(table) == ["games-a", "games-b", "analyze"]
    assert table["games-a"][1:5] == ["games", "complete", "4/4 (100.0 %)", "cpu"]
    assert table["games-b"][2] == "**failed**" and "RuntimeError: no engine" in table["games-b"][7]
    assert table["analyze"][2:4] == ["not started", "–"] and table["analyze"][7] == "waits for games-b"
    assert "- command: `harness run games --config" in md and "- log: `" in md
    assert "`games.jsonl`" in md and "- last error: RuntimeError: no engine" in md
    assert "| scripted | variable | 50.0 % (1/2) |" in md  # read back by harness.analysis
    report = StudyStatus.model_validate_json((out / "status.json").read_text())
    assert [e.state for e in report.experiments] == ["complete", "failed", "not started"]
    assert report.stall_minutes == 5 and report.of == "study"
    printed = json.loads(harness_status(capsys, str(study.path), "--json")[1])
    assert printed["experiments"][0]["done"] == 4 and printed["experiments"][0]["headlines"]
    published = json.loads((DOCS / "schemas" / "status.schema.json").read_text())
    assert published == status_json_schema(), "run `harness schema` to refresh docs/schemas"
    jsonschema.Draft202012Validator(published).validate(printed)
    # the games' run directory alone: the same table, its command from the manifest
    rc, run, err = harness_status(capsys, str(study.path / "games-a"), "--stall-minutes", "1")
    assert rc == 0, err
    assert rows(run)["games"][1:4] == ["games", "complete", "4/4 (100.0 %)"]
    assert "- command: `harness run games --config" in run and "Stalled: no event for 1 min" in run
    assert "| scripted | variable | 50.0 % (1/2) |" in run


def test_analyze_headline(study, capsys):
    config, out = str(study.path / "fast.toml"), str(study.path / "games-a")
    assert main(["run", "games", "--config", config, "--out", out, "--quiet"]) == 0
    study.append(ExperimentEvent(experiment="games-a", kind="games", state="complete", returncode=0))
    out = study.path / "analyze"
    assert main(["analyze", str(study.path / "games-a"), "--out", str(out), "--no-figures",
                 "--bootstrap", "10"]) == 0
    study.append(ExperimentEvent(experiment="analyze", kind="analyze", state="complete", returncode=0))
    md = harness_status(capsys, str(study.path))[1]
    assert f"report: {out / 'report.md'}" in md and "| scripted | all | 4 | 25.0 % |" in md


@pytest.mark.parametrize("args,message", [
    (["nowhere"], "nowhere: no such directory"),
    (["."], "neither a study directory"),
    ([".", "--stall-minutes", "0"], "--stall-minutes: must be > 0"),
])
def test_bad_input_is_one_line(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    rc, _, err = harness_status(capsys, *args)
    assert rc == 2 and message in err
    assert len(err.strip().splitlines()) == 1


def wait_for(predicate, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_a_stopped_worker_is_reported_stalled(study, capsys):
    """The issue's test: `harness status` says "stalled" for an experiment whose process lives (it
    is stopped with SIGSTOP) but writes nothing for the stall window."""
    name = "games-b"
    command = ["run", "games", "--config", str(study.path / "slow.toml"), "--out", str(study.path / name),
               "--quiet"]
    events = study.path / name / "events.jsonl"
    with open(study.log_path(name), "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "harness", *command], stdout=log, stderr=log)
    try:
        study.append(ExperimentEvent(experiment=name, kind="games", state="running", command=command,
                                     pid=proc.pid, devices=["cpu"]))
        wait_for(lambda: events.exists() and b'"progress"' in events.read_bytes(), 120, "progress events")
        # a wider window here: on a busy machine the run may not be scheduled for a few seconds
        running = harness_status(capsys, str(study.path), "--stall-minutes", "0.5")[1]
        assert rows(running)[name][2] == "running", running
        os.kill(proc.pid, signal.SIGSTOP)
        time.sleep(3.5)  # the window: 0.05 min
        stalled = harness_status(capsys, str(study.path), "--stall-minutes", "0.05")[1]
        row = rows(stalled)[name]
        assert row[2] == "**stalled**", stalled
        assert f"while pid {proc.pid} lives (the process is stopped: SIGSTOP?)" in row[7]
        assert "- diagnosis: no event for" in stalled
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait(timeout=30)
    # killed: on record still running, its pid gone, no run_end
    died = harness_status(capsys, str(study.path), "--stall-minutes", "0.05")[1]
    assert rows(died)[name][2] == "**failed**"
    assert f"the process died (pid {proc.pid} gone, no run_end); rerun the study to resume" in died


def test_an_unreadable_result_file_is_one_line_not_a_crash(tmp_path):
    from harness.status.headline import headlines

    (tmp_path / "patch_features.parquet").write_bytes(b"not parquet")
    (found,) = headlines("sae-patch", tmp_path)
    assert found.text.startswith("unreadable: ") and not found.rows
    assert headlines("sae-words", tmp_path) == []  # nothing written yet: no headline


@pytest.mark.parametrize("name", ["patch", "patching"])
def test_the_patch_pass_is_found_under_its_name_and_its_older_one(tmp_path, name):
    """A run directory's patch pass: RUN/sae/patch with events of kind `patch`, or an older run's
    RUN/sae/patching with events of kind `patching`: one pass either way, with its worker."""
    from harness.rundir.files import EVENTS_FILE
    from harness.status.facts import run_facts
    from tests.tui.builders import append, progress, start

    (tmp_path / "sae" / name).mkdir(parents=True)
    append(tmp_path / EVENTS_FILE, start(0, gpu=None, total=3, kind=name), progress(5, 2, gpu=None, total=3,
                                                                                   kind=name))
    (found,) = run_facts(tmp_path, [])
    assert (found.name, found.kind) == (f"sae/{name}", "sae-patch")
    assert [(w.kind, w.games_done) for w in found.workers] == [("patch", 2)]  # the older name read as patch
