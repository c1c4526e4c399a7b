"""`harness study run` with real subprocesses and real signals: scripted games for the scheduling,
the embedded SmolLM2 for the SAE stages and the issue's resume test."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from harness.errors import RunDirError
from harness.study.layout import ExperimentEvent, StudyDir
from harness.study.runner import adopt_study_file, duration, failure_note

SCRIPTED_RUN = """
seed = 3
repetitions = {reps}
concurrency = 1
progress_interval_s = 0.2
[model]
name = "SmolLM2-135M-Instruct"
path = "embedded:smollm2-135m-instruct"
style = "base"
[game]
initial_balance = 30
max_rounds = 6
[conditions]
ids = ["fixed-L-BASE", "variable-L-GMP", "fixed-none-GM", "variable-W-BASE"]
[backend]
kind = "scripted"
script = ["Final Decision: Bet $10", "Final Decision: Bet $10", "Final Decision: Stop"]
script_delay_s = {delay}
"""

GAMES_ONLY = """
name = "scheduling"
cpu_slots = 2
[[experiment]]
name = "good"
kind = "games"
config = "run.toml"
[[experiment]]
name = "bad"
kind = "games"
config = "broken.toml"
[[experiment]]
name = "behaviour"
kind = "analyze"
runs = ["good", "bad"]
[[experiment]]
name = "alone"
kind = "analyze"
runs = ["good"]
options = { bootstrap = 20, no-figures = true }
"""

GOOD_ALONE = """
name = "resume"
[[experiment]]
name = "good"
kind = "games"
config = "run.toml"
[[experiment]]
name = "alone"
kind = "analyze"
runs = ["good"]
options = { bootstrap = 20, no-figures = true }
"""

#: Tiny SAE stages on layer 3 of SmolLM2; patching long enough (3 features, one per batch) to be
#: killed in its middle.
SAE_STUDY = """
name = "sae"
[[experiment]]
name = "games"
kind = "games"
config = "run.toml"
[[experiment]]
name = "behaviour"
kind = "analyze"
runs = ["games"]
options = { bootstrap = 20, no-figures = true }
[[experiment]]
name = "train"
kind = "sae-train"
run = "games"
options = { layers = "3", expansion = 2, k = 8, batch-tokens = 256, steps = 20, batch-size = 8 }
[[experiment]]
name = "features"
kind = "sae-features"
run = "games"
sae = "train"
[[experiment]]
name = "patch"
kind = "sae-patch"
run = "games"
sae = "train"
features = "features"
options = { all-features = true, top = 3, trials = 1, max-new-tokens = 4, batch-size = 4 }
[[experiment]]
name = "words"
kind = "sae-words"
run = "games"
sae = "train"
features = "features"
options = { all-features = true, top = 3, k-tokens = 3, k-words = 3 }
"""


def _write(folder: Path, study: str, reps: int = 2, delay: float = 0.0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "run.toml").write_text(SCRIPTED_RUN.format(reps=reps, delay=delay))
    (folder / "broken.toml").write_text("seed = 'zero'\n")
    (folder / "study.toml").write_text(study)
    return folder / "study.toml"


def _start(study: Path, out: Path) -> subprocess.Popen:
    """A study runner in its own session (the test kills its process group). One torch thread for
    its commands: on the shared 2-core machine two spinning OpenMP threads ran 20x slower."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", "study", "run", str(study), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def _finish(proc: subprocess.Popen, timeout: float) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of a study runner."""
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _states(out: Path) -> list[tuple[str, str]]:
    return [(e.experiment, e.state) for e in StudyDir(out).events()]


# --- pure helpers ----------------------------------------------------------------------------------


def test_the_note_of_a_failure_is_the_logs_failure_note(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("loading\nTraceback (most recent call last):\n  File x\nValueError: bad layer\n"
                   "sae features: 3/10 prompts\rsae features: 4/10 prompts\n")
    assert failure_note(log) == "ValueError: bad layer"
    log.write_text("harness: error: --layers: 40 out of range\n")
    assert failure_note(log) == "harness: error: --layers: 40 out of range"
    log.write_text("summary | retries 0 errors 0 | wall 3 s\n")  # a count of errors is no error
    assert failure_note(log) == "summary | retries 0 errors 0 | wall 3 s"  # (its last line)
    log.write_text("just\nwords\n")
    assert failure_note(log) == "words"
    assert failure_note(tmp_path / "none.log") is None


def test_durations_read_as_words():
    assert [duration(s) for s in (4.4, 130, 3900)] == ["4 s", "2 min 10 s", "1 h 5 min"]


def test_a_rerun_with_a_changed_study_file_is_refused_but_out_may_change(tmp_path):
    source = _write(tmp_path / "src", GAMES_ONLY)
    study_dir = StudyDir(tmp_path / "study")
    adopt_study_file(source, study_dir)
    assert study_dir.study_file.read_text() == GAMES_ONLY
    source.write_text('out = "elsewhere"\n' + GAMES_ONLY)
    adopt_study_file(source, study_dir)
    source.write_text(GAMES_ONLY.replace("bootstrap = 20", "bootstrap = 30"))
    with pytest.raises(RunDirError, match=r"differs from .*study.toml .* in experiment\[3\]; rerun"):
        adopt_study_file(source, study_dir)


# --- real processes, scripted games ------------------------------------------------------------------


def test_a_failure_stops_its_dependants_and_the_others_go_on(tmp_path):
    out = tmp_path / "study"
    code, stdout, _ = _finish(_start(_write(tmp_path, GAMES_ONLY), out), 120)
    assert code == 1
    last = StudyDir(out).last_events()
    assert last["good"].state == last["alone"].state == "complete"
    assert last["bad"].state == "failed" and last["bad"].returncode == 2
    assert "seed" in (last["bad"].note or "")  # the log's error line
    assert "behaviour" not in last  # never started
    assert "behaviour: not started: it needs bad, which failed" in stdout
    assert (out / "alone" / "report.md").is_file()
    assert (out / "logs" / "bad.log").read_text().startswith("=== ")


def test_ctrl_c_stops_the_commands_and_a_rerun_resumes(tmp_path):
    out = tmp_path / "study"
    study = _write(tmp_path, GOOD_ALONE, reps=6, delay=0.1)
    proc = _start(study, out)
    games = out / "good" / "games.jsonl"
    deadline = time.time() + 60
    while not (games.is_file() and games.read_text().count("\n") >= 2) and time.time() < deadline:
        time.sleep(0.1)
    second = _start(study, out)  # one runner per study directory
    _, err = second.communicate(timeout=60)
    assert second.returncode == 2 and "in use by another harness process" in err and err.count("\n") == 1
    os.kill(proc.pid, signal.SIGINT)
    code, stdout, _ = _finish(proc, 60)
    assert code == 130, stdout
    assert _states(out) == [("good", "running"), ("good", "interrupted")]
    played = games.read_text().count("\n")
    assert 2 <= played < 24
    code, stdout, _ = _finish(_start(study, out), 120)
    assert code == 0, stdout
    assert _states(out)[2:] == [("good", "running"), ("good", "complete"), ("alone", "running"),
                                ("alone", "complete")]
    assert games.read_text().count("\n") == 24  # the games played before Ctrl-C were kept
    code, stdout, _ = _finish(_start(study, out), 60)  # all complete: nothing runs again
    assert code == 0 and "good: complete on record, not rerun" in stdout
    assert len(_states(out)) == 6


# --- the embedded model --------------------------------------------------------------------------


def _patch_tables(folder: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_parquet(folder / f"{name}.parquet").sort_values(["layer", "feature"])
            .reset_index(drop=True) for name in ("patch_tests", "patch_features")}


@pytest.fixture(scope="module")
def whole_study(tmp_path_factory, smollm2_path):
    """The SAE study run once without interruption: the reference of the resume test."""
    root = tmp_path_factory.mktemp("whole")
    out = root / "study"
    code, stdout, err = _finish(_start(_write(root, SAE_STUDY), out), 600)
    assert code == 0, stdout + err
    return out


@pytest.mark.model
def test_the_whole_study_runs_each_stage_once_into_its_folder(whole_study):
    names = ["games", "behaviour", "train", "features", "patch", "words"]
    assert _states(whole_study) == [(n, s) for n in names for s in ("running", "complete")]
    assert (whole_study / "features" / "features.parquet").is_file()
    assert (whole_study / "words" / "words.parquet").is_file()
    assert (whole_study / "patch" / "patch_features.parquet").is_file()
    for name in ("train", "features", "patch", "words"):  # each SAE pass has its own progress stream
        lines = (whole_study / name / "events.jsonl").read_text().splitlines()
        kinds = {json.loads(ln)["type"] for ln in lines}
        assert {"run_start", "run_end"} <= kinds, name
    run_events = (whole_study / "games" / "events.jsonl").read_text()
    assert '"kind":"games"' in run_events.replace(" ", "") and '"kind":"features"' not in run_events
    report = json.loads((whole_study / "status.json").read_text())  # written by the runner at the end
    assert [(e["name"], e["state"]) for e in report["experiments"]] == [(n, "complete") for n in names]
    assert all(e["headlines"] for e in report["experiments"]), report
    assert "| games | games | complete |" in (whole_study / "status.md").read_text()


@pytest.mark.model
def test_a_killed_study_resumes_patching_and_reruns_nothing_complete(tmp_path, whole_study):
    out = tmp_path / "study"
    study = _write(tmp_path, SAE_STUDY)
    proc = _start(study, out)
    patch_trials = out / "patch" / "patch_trials.jsonl"
    deadline = time.time() + 400
    while time.time() < deadline and proc.poll() is None:
        # the baseline's line and one or two of the three features' lines: patching is midway (its
        # progress events come at most every 2 s, too seldom for a quick pass)
        done = patch_trials.read_bytes().count(b"\n") if patch_trials.is_file() else 0
        if 2 <= done < 4:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the study ended before patching made progress"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = StudyDir(out).last_events()
    assert before["patch"].state == "running" and "words" not in before
    kept = [ln for ln in (out / "patch" / "patch_trials.jsonl").read_text().splitlines(keepends=True)
            if ln.endswith("\n")]
    trials = len(kept)
    code, stdout, err = _finish(_start(study, out), 600)
    assert code == 0, stdout + err
    starts = [e.experiment for e in StudyDir(out).events() if e.state == "running"]
    assert sorted(starts) == ["behaviour", "features", "games", "patch", "patch", "train", "words"]
    assert "patch: running" in stdout and "features: complete on record, not rerun" in stdout
    assert trials >= 2  # the baseline and at least one feature were kept, not redone
    assert (out / "patch" / "patch_trials.jsonl").read_text().startswith("".join(kept))
    again = _patch_tables(out / "patch")
    for name, table in _patch_tables(whole_study / "patch").items():
        pd.testing.assert_frame_equal(again[name], table)


def test_an_event_line_round_trips():
    e = ExperimentEvent(experiment="x", kind="games", state="failed", returncode=2, note="n")
    assert ExperimentEvent.model_validate_json(e.model_dump_json()) == e
