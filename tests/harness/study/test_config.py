"""The study file: inputs named by experiment, checked by kind; one error line per mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.study.config import load_study
from harness.study.layout import ExperimentEvent, StudyDir

GOOD = """
name = "t"
[[experiment]]
name = "games"
kind = "games"
config = "run.toml"
[[experiment]]
name = "train"
kind = "sae-train"
run = "games"
options = { layers = "15", steps = 5 }
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


def _study(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_a_study_reads_its_experiments_and_their_inputs(tmp_path):
    study = load_study(_study(tmp_path, GOOD))
    assert [e.name for e in study.experiment] == ["games", "train", "features", "patch"]
    assert study.get("patch").needs(study) == ["games", "train", "features"]
    assert study.get("train").options == {"layers": "15", "steps": 5}
    assert study.base_dir == tmp_path.resolve()


def test_an_sae_given_as_a_path_is_no_dependency(tmp_path):
    head = '\n[[experiment]]\nname = "patch"'
    text = GOOD.replace('sae = "train"' + head, 'sae = "/saes/llama"' + head)
    study = load_study(_study(tmp_path, text))
    assert study.get("features").needs(study) == ["games"]


@pytest.mark.parametrize(("change", "message"), [
    (('kind = "sae-train"', 'kind = "sae-trian"'), "experiment.1.kind: Input should be"),
    (('features = "features"', 'features = "featurs"'), "features names no experiment: 'featurs'"),
    (('features = "features"', 'features = "train"'), "features 'train' is a sae-train experiment"),
    (('name = "train"', 'name = "games"'), "experiment 'games' is named twice"),
    (('config = "run.toml"\n', ''), "a games experiment needs 'config'"),
    (('run = "games"\noptions', 'runs = ["games"]\noptions'), "a sae-train experiment needs 'run'"),
    (('name = "t"', 'name = "t"\ncolour = 1'), "colour: unknown field"),
])
def test_each_mistake_is_one_line_naming_file_and_field(tmp_path, change, message):
    path = _study(tmp_path, GOOD.replace(*change, 1))
    with pytest.raises(ConfigError) as err:
        load_study(path)
    assert str(err.value).startswith(f"{path}: ") and "\n" not in str(err.value)
    assert message in str(err.value)


def test_missing_and_broken_files_say_so(tmp_path):
    with pytest.raises(ConfigError, match="study file not found"):
        load_study(tmp_path / "none.toml")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_study(_study(tmp_path, "name = "))


def test_the_latest_event_of_each_experiment_is_its_state(tmp_path):
    study_dir = StudyDir(tmp_path)
    study_dir.append(ExperimentEvent(experiment="games", kind="games", state="running", pid=1))
    study_dir.append(ExperimentEvent(experiment="games", kind="games", state="complete", returncode=0))
    study_dir.append(ExperimentEvent(experiment="train", kind="sae-train", state="running", pid=2))
    with open(study_dir.events_path, "ab") as f:
        f.write(b'{"type": "experiment", "experi')  # a runner killed mid-line
    states = {name: e.state for name, e in study_dir.last_events().items()}
    assert states == {"games": "complete", "train": "running"}
