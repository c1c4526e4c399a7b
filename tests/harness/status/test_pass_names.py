"""An SAE pass has one name (the patch pass: `patch`), and `harness status` still reads a run patched
by an older version: events of kind "patching" and a RUN/sae/patching folder."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.records import ProgressEvent, RunEndEvent, RunStartEvent
from harness.rundir.files import EVENTS_FILE, PATCH_FEATURES, SAE_DIR
from harness.rundir.jsonl import append_record
from harness.status.build import build_status
from harness.study.layout import ExperimentEvent, StudyDir

T0 = 1_790_000_000.0


def patch_events(kind: str, *, resumed_as: str | None = None) -> list:
    """A patch pass on CPU over 6 features: written by one version (`kind`), and, when
    `resumed_as` is given, interrupted at 2 and resumed to the end by another."""
    common = dict(run_id="r", worker=0, gpu=None, kind=kind)
    events: list = [
        RunStartEvent(time=T0, model="smollm2", games_total=6, pid=1, **common),
        ProgressEvent(time=T0 + 10, games_done=2, games_total=6, requests=2, requests_per_s=0.2,
                      tokens_per_s=5.0, **common),
    ]
    if resumed_as is None:
        return [*events, RunEndEvent(time=T0 + 30, games_done=6, games_total=6, wall_s=30, **common)]
    events.append(RunEndEvent(time=T0 + 11, games_done=2, games_total=6, wall_s=11, status="interrupted",
                              **common))
    again = {**common, "kind": resumed_as}
    return [*events,
            RunStartEvent(time=T0 + 100, model="smollm2", games_total=6, games_already_done=2, pid=2,
                          **again),
            RunEndEvent(time=T0 + 130, games_done=6, games_total=6, wall_s=30, **again)]


def write_patch_table(folder) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"layer": [3, 3, 4], "feature": [1, 2, 3],
                  "classification": ["safe", "risky", "safe"]}).to_parquet(folder / PATCH_FEATURES)


@pytest.mark.parametrize(("folder", "kinds"), [
    ("patch", ("patch", None)),
    ("patching", ("patching", None)),  # an older run
    ("patching", ("patching", "patch")),  # an older run resumed by this version
])
def test_a_run_directorys_patch_pass_by_either_name(tmp_path, folder, kinds):
    run = tmp_path / "run"
    write_patch_table(run / SAE_DIR / folder)
    for ev in patch_events(kinds[0], resumed_as=kinds[1]):
        append_record(run / EVENTS_FILE, ev)
    (exp,) = build_status(run, now=T0 + 200).experiments
    assert (exp.name, exp.kind, exp.state) == (f"sae/{folder}", "sae-patch", "complete")
    assert (exp.done, exp.total) == (6, 6)
    assert [(w.kind, w.worker, w.status) for w in exp.workers] == [("patch", 0, "complete")]
    (headline,) = exp.headlines
    assert headline.rows == [["3", "1", "1", "0", "0"], ["4", "1", "0", "0", "0"],
                             ["all", "2", "1", "0", "0"]]


def test_events_of_an_older_patch_pass_without_its_folder(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    for ev in patch_events("patching")[:2]:
        append_record(run / EVENTS_FILE, ev)
    (exp,) = build_status(run, now=T0 + 20).experiments
    assert (exp.name, exp.kind, exp.done, exp.total) == ("sae-patch", "sae-patch", 2, 6)
    assert exp.folder == str(run / SAE_DIR / "patch")


STUDY_TOML = """
name = "old-patch"
[[experiment]]
name = "games"
kind = "games"
config = "run.toml"
[[experiment]]
name = "train"
kind = "sae-train"
run = "games"
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
"""


def test_a_study_experiment_whose_pass_wrote_patching_events(tmp_path):
    study = StudyDir(tmp_path / "study")
    study.path.mkdir()
    study.study_file.write_text(STUDY_TOML)
    study.append(ExperimentEvent(time=T0, experiment="patch", kind="sae-patch", state="running", pid=1))
    study.experiment_dir("patch").mkdir()
    for ev in patch_events("patching"):
        append_record(study.experiment_dir("patch") / EVENTS_FILE, ev)
    write_patch_table(study.experiment_dir("patch"))
    study.append(ExperimentEvent(time=T0 + 31, experiment="patch", kind="sae-patch", state="complete",
                                 returncode=0))
    patch = build_status(study.path, now=T0 + 40).experiments[-1]
    assert (patch.name, patch.state, patch.done, patch.total) == ("patch", "complete", 6, 6)
    assert [w.kind for w in patch.workers] == ["patch"]
    assert patch.headlines[0].rows[-1] == ["all", "2", "1", "0", "0"]
