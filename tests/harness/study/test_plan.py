"""The study's plan: each experiment's argv (checked by harness's own parser), order, devices."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ConfigError
from harness.study.config import Study, load_study
from harness.study.plan import (
    blocked,
    dependency_order,
    device_conflicts,
    experiment_argv,
    fits,
    option_flags,
    plan_study,
    ready,
)

STUDY = """
name = "t"
[[experiment]]
name = "games"
kind = "games"
config = "run.toml"
[[experiment]]
name = "games-b"
kind = "games"
config = "run-b.toml"
devices = ["cuda:0", "cuda:1"]
[[experiment]]
name = "behaviour"
kind = "analyze"
runs = ["games", "games-b"]
options = { bootstrap = 100, no-figures = true }
[[experiment]]
name = "train"
kind = "sae-train"
run = "games"
options = { layers = "15", steps = 60 }
[[experiment]]
name = "features"
kind = "sae-features"
run = "games"
sae = "train"
[[experiment]]
name = "pathway"
kind = "sae-pathway"
run = "games"
sae = "train"
options = { games = 6, layers = [10, 15] }
[[experiment]]
name = "patch"
kind = "sae-patch"
run = "games"
sae = "train"
features = "features"
options = { top = 3, trials = 4 }
[[experiment]]
name = "words"
kind = "sae-words"
run = "games"
sae = "train"
features = "features"
causal = "patch"
"""

ROOT = Path("/studies/s")


def _load(tmp_path: Path, text: str = STUDY) -> Study:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return load_study(path)


def test_each_kind_runs_its_command_on_the_study_directory(tmp_path):
    study = _load(tmp_path)
    argv = plan_study(study, ROOT)
    assert argv["games"] == ["run", "games", "--config", str(tmp_path.resolve() / "run.toml"),
                             "--out", "/studies/s/games", "--device", "cpu"]
    assert argv["games-b"][-2:] == ["--gpus", "0,1"]
    assert argv["behaviour"] == ["analyze", "/studies/s/games", "/studies/s/games-b", "--out",
                                 "/studies/s/behaviour", "--bootstrap", "100", "--no-figures"]
    assert argv["train"] == [
        "sae", "train", "/studies/s/games", "--out", "/studies/s/train", "--device", "cpu",
        "--events", "/studies/s/train/events.jsonl", "--layers", "15", "--steps", "60",
    ]
    # an SAE pass on a trained SAE reads the layers it trained, unless told otherwise
    assert argv["features"][-2:] == ["--layers", "15"]
    assert argv["features"][3:5] == ["--sae", "/studies/s/train"]
    assert argv["pathway"][-4:] == ["--games", "6", "--layers", "10,15"]
    patch = argv["patch"]
    assert patch[:3] == ["sae", "patch", "/studies/s/games"]
    assert patch[3:5] == ["--features", "/studies/s/features/features.parquet"]
    assert patch[patch.index("--events") + 1] == "/studies/s/patch/events.jsonl"
    words = argv["words"]
    assert words[words.index("--causal") + 1] == "/studies/s/patch/patch_features.parquet"


def test_ray_goes_to_the_games_and_a_relative_sae_spec_starts_at_the_study_file(tmp_path):
    head = '\noptions = { games'
    study = _load(tmp_path, STUDY.replace('sae = "train"' + head, 'sae = "saes/L{layer}"' + head))
    # a CPU cluster has no GPU: CPU actors (options.workers = N for more than one)
    on_cpu = experiment_argv(study, study.get("games"), ROOT, ray="auto")
    assert on_cpu[-4:] == ["--workers", "1", "--ray", "auto"]
    on_gpus = experiment_argv(study, study.get("games-b"), ROOT, ray="auto")
    assert on_gpus[-4:] == ["--gpus", "0,1", "--ray", "auto"]
    pathway = experiment_argv(study, study.get("pathway"), ROOT)
    assert pathway[pathway.index("--sae") + 1] == str(tmp_path.resolve() / "saes/L{layer}")
    assert "--ray" not in experiment_argv(study, study.get("train"), ROOT, ray="auto")


def test_with_ray_an_sae_experiment_may_not_take_a_gpu_of_this_machine(tmp_path):
    study = _load(tmp_path, STUDY.replace('kind = "sae-train"', 'kind = "sae-train"\ndevices = ["cuda:0"]'))
    assert plan_study(study, ROOT)  # without Ray: fine
    match = r"experiment\[3\].devices: with --ray the games run on GPUs Ray hands out, which may include cuda"
    with pytest.raises(ConfigError, match=match):
        plan_study(study, ROOT, ray="auto")


def test_the_demo_study_plans_on_a_cpu_cluster():
    study = load_study(Path("configs/study-demo.toml"))
    argvs = plan_study(study, ROOT, ray="local")
    assert argvs["games"][-4:] == ["--workers", "1", "--ray", "local"]
    assert all("--ray" not in argv for name, argv in argvs.items() if name != "games")


def test_options_become_flags():
    options = {"top": 3, "all-features": True, "restart": False, "layers": [1, 2], "max_p": 0.01}
    assert option_flags(options) == ["--top", "3", "--all-features", "--layers", "1,2", "--max-p", "0.01"]


@pytest.mark.parametrize(("change", "message"), [
    (("top = 3", "tpo = 3"), "experiment[6].options.tpo: `harness sae patch` has no option --tpo"),
    (("top = 3", 'top = "three"'), "experiment[6].options.top: argument --top: invalid int value: 'three'"),
    (("steps = 60", 'steps = 60, architecture = "relu"'), "experiment[3].options.architecture: argument"),
    (('layers = "15", ', ""), "experiment[3].options: the following arguments are required: --layers"),
    (("top = 3", 'top = 3, out = "x"'), "experiment[6].options.out: set by the study"),
    (('"cuda:0", "cuda:1"', '"gpu0"'), "experiment[1].devices: 'gpu0' is neither"),
    (('options = { top', 'devices = ["cuda:0", "cuda:1"]\noptions = { top'),
     "experiment[6].devices: a sae-patch experiment runs on one device"),
])
def test_a_bad_option_is_one_line_naming_the_experiment_and_key(tmp_path, change, message):
    study = _load(tmp_path, STUDY.replace(*change, 1))
    with pytest.raises(ConfigError) as err:
        plan_study(study, ROOT)
    assert str(err.value).startswith(f"{tmp_path.resolve() / 'study.toml'}: ")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_dependencies_order_the_study_and_a_failure_blocks_only_its_dependants(tmp_path):
    study = _load(tmp_path)
    order = dependency_order(study)
    assert order.index("games") < order.index("train") < order.index("features") < order.index("patch")
    assert order.index("patch") < order.index("words")
    assert ready(study, set(), set(), set()) == ["games", "games-b"]
    assert ready(study, {"games"}, {"games-b"}, set()) == ["train"]
    assert ready(study, {"games", "games-b", "train"}, set(), set()) == ["behaviour", "features", "pathway"]
    assert blocked(study, ["features"]) == {"patch", "words"}
    # pathway needs train, not features: it goes on when features failed
    assert ready(study, {"games", "games-b", "train", "behaviour"}, set(), {"features"}) == ["pathway"]


def test_one_experiment_per_gpu_and_cpu_slots_on_cpu(tmp_path):
    study = _load(tmp_path)
    cpu_a, gpus = study.get("games"), study.get("games-b")
    assert fits(cpu_a, [], 1) and not fits(study.get("train"), [cpu_a], 1)
    assert fits(study.get("train"), [cpu_a], 2)
    assert fits(gpus, [cpu_a], 1)  # other devices run at the same time
    on_gpu1 = study.get("features").model_copy(update={"devices": ["cuda:1"]})
    assert not fits(on_gpu1, [gpus], 1)
    assert fits(on_gpu1.model_copy(update={"devices": ["cuda:2"]}), [gpus], 1)


def test_independent_experiments_sharing_a_gpu_are_named(tmp_path):
    text = STUDY.replace('options = { games = 6', 'devices = ["cuda:1"]\noptions = { games = 6')
    head = 'features = "features"\n'
    text = text.replace(head + 'options = { top', head + 'devices = ["cuda:1"]\noptions = { top')
    study = _load(tmp_path, text)
    assert device_conflicts(study) == [
        ("games-b", "pathway", "cuda:1"), ("games-b", "patch", "cuda:1"), ("pathway", "patch", "cuda:1")
    ]
