"""The monitor on a study directory: one panel per experiment, driven headless while the test writes
the study's records and the experiments' events as the runner and the commands would."""

from __future__ import annotations

import os

from harness.cli import main
from harness.study.layout import ExperimentEvent, StudyDir
from tests.tui.builders import T0, Clock, append, end, progress, start, until
from tui.app import MonitorApp
from tui.state import MonitorState
from tui.study import StudyWatch, experiment_rows
from tui.widgets import ExperimentPanel

STUDY_TOML = """
name = "tui-study"
stall_minutes = 1

[[experiment]]
name = "games-a"
kind = "games"
config = "a.toml"

[[experiment]]
name = "games-b"
kind = "games"
config = "b.toml"

[[experiment]]
name = "analyze"
kind = "analyze"
runs = ["games-a", "games-b"]
"""


def make_study(tmp_path) -> StudyDir:
    study = StudyDir(tmp_path / "study")
    study.path.mkdir()
    study.study_file.write_text(STUDY_TOML)
    return study


def record(name: str, state: str, t: float, **kw) -> ExperimentEvent:
    return ExperimentEvent(time=T0 + t, experiment=name, kind="games", state=state, devices=["cuda:0"], **kw)


def panel_text(app: MonitorApp) -> dict[str, str]:
    return {str(p.border_title): str(p.query_one(".stats").content) for p in app.query(ExperimentPanel)}


async def test_one_panel_per_experiment_with_its_state(tmp_path, monkeypatch):
    # the fake clock's records predate this process: its start time is not what is tested here
    monkeypatch.setattr("harness.status.facts._started_after", lambda fields, since: False)
    study, clock = make_study(tmp_path), Clock(T0 + 20)
    app = MonitorApp([study.path], study=study.path, interval=0.02, clock=clock)
    assert app.stall_after == 60  # the study file's stall_minutes
    async with app.run_test() as pilot:
        await until(pilot, lambda: len(panel_text(app)) == 3)
        assert list(panel_text(app)) == ["games-a · games", "games-b · games", "analyze · analyze"]
        assert "not started" in panel_text(app)["analyze · analyze"]
        # games-a ran to the end; games-b runs (this test's own pid: alive)
        study.append(record("games-a", "running", 0, pid=os.getpid()))
        append(study.experiment_dir("games-a") / "events.jsonl", start(0, total=10), end(8, 10, total=10))
        study.append(record("games-a", "complete", 9, returncode=0))
        study.append(record("games-b", "running", 10, pid=os.getpid()))
        events_b = study.experiment_dir("games-b") / "events.jsonl"
        append(events_b, start(10, total=10), progress(18, 4, total=10))
        await until(pilot, lambda: "4/10" in panel_text(app)["games-b · games"])
        text = panel_text(app)
        assert "complete" in text["games-a · games"] and "10/10" in text["games-a · games"]
        assert "running" in text["games-b · games"] and "cuda:0" in text["games-b · games"]
        assert "waits for games-b" in text["analyze · analyze"]
        panels = {str(p.border_title): p for p in app.query(ExperimentPanel)}
        assert panels["games-a · games"].has_class("-complete")
        clock.now = T0 + 200  # games-b silent for 182 s while its process lives
        await until(pilot, lambda: panels["games-b · games"].has_class("-stalled"))
        assert "no event for 3.0 min while pid" in panel_text(app)["games-b · games"]
        await pilot.press("right")
        assert app.focused is panels["games-a · games"]


def test_a_study_is_watched_alone(tmp_path, capsys):
    study = make_study(tmp_path)
    assert main(["monitor", str(study.path), str(tmp_path / "run")]) == 2
    assert "a study directory is watched alone" in capsys.readouterr().err


SAE_STUDY_TOML = """
name = "tui-sae"
[[experiment]]
name = "games"
kind = "games"
config = "a.toml"
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


def test_a_patch_experiment_whose_events_carry_the_older_name(tmp_path):
    """Its pass wrote events of kind "patching" (an older version): they are its workers, the
    games-style events of the same file are not."""
    study = StudyDir(tmp_path / "study")
    study.path.mkdir()
    study.study_file.write_text(SAE_STUDY_TOML)
    watch = StudyWatch(study.path)
    state = MonitorState([str(p) for p in watch.runs()])
    source = watch.names.index("patch")
    for ev in (start(0, gpu=None, total=4, kind="games"), start(1, gpu=None, total=6, kind="patching"),
               progress(5, 3, gpu=None, total=6, kind="patching")):
        state.apply_event(source, ev)
    rows = {r.name: r for r in experiment_rows(watch, watch.poll(), state.workers, T0 + 6, 600)}
    assert (rows["patch"].kind, rows["patch"].done, rows["patch"].total) == ("sae-patch", 3, 6)
    assert rows["features"].state == "not started" and rows["features"].note == "waits for games, train"
