"""Issue 21's inputs to `study run`, `status`, `monitor`, `sae` and `schema`, one row each: the
command succeeds (exit 0, with what it must say), or it prints one line and exits 2; never a
traceback, nothing written where it was not asked to write."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cli import main
from harness.rundir.files import EVENTS_FILE
from harness.study.layout import ExperimentEvent, StudyDir
from tests.helpers import write_study


@dataclass
class Row:
    argv: Callable[[Path], list[str]]
    code: int
    says: str


def study(games: str = "", analyze: str = "") -> Callable[[Path], list[str]]:
    def argv(tmp: Path) -> list[str]:
        return ["study", "run", str(write_study(tmp, games, analyze))]

    return argv


def status_out_blocked(tmp: Path) -> list[str]:
    """`harness status --out OUT` where OUT/status.md is a directory: the write fails."""
    (tmp / "out" / "status.md").mkdir(parents=True)
    return [*events(10**20)(tmp), "--out", str(tmp / "out")]


def events(pid: int) -> Callable[[Path], list[str]]:
    def argv(tmp: Path) -> list[str]:
        line = {"type": "run_start", "time": time.time() - 5, "run_id": "x", "model": "m", "games_total": 3,
                "pid": pid}
        (tmp / EVENTS_FILE).write_text(json.dumps(line) + "\n")
        return ["status", str(tmp)]

    return argv


def sae(cfg: dict, *flags: str) -> Callable[[Path], list[str]]:
    def argv(tmp: Path) -> list[str]:
        (tmp / "sae").mkdir()
        (tmp / "sae" / "cfg.json").write_text(json.dumps({"d_in": 4, "d_sae": 8, "architecture": "standard",
                                                          **cfg}))
        (tmp / "sae" / "sae_weights.safetensors").write_bytes(b"")
        (tmp / "ev").mkdir()
        return ["sae", "features", str(tmp / "run"), "--sae", str(tmp / "sae"), *flags]

    return argv


def study_with_pid(pid: int) -> Callable[[Path], list[str]]:
    def argv(tmp: Path) -> list[str]:
        study("")(tmp)
        d = StudyDir(tmp / "study-out")
        d.path.mkdir()
        (d.study_file).write_text((tmp / "study.toml").read_text())
        d.append(ExperimentEvent(experiment="games", kind="games", state="running", pid=pid, devices=["cpu"]))
        return ["status", str(d.path)]

    return argv


def non_utf8(tmp: Path) -> list[str]:
    (tmp / "study.toml").write_bytes(b'name = "\xff\xfe"\n')
    return ["study", "run", str(tmp / "study.toml")]


def directory_as(name: str, argv: list[str]) -> Callable[[Path], list[str]]:
    def build(tmp: Path) -> list[str]:
        (tmp / name).mkdir()
        return [a.replace("TMP", str(tmp)) for a in argv]

    return build


ROWS = {
    "study: options { ou = ... } on analyze": Row(study(analyze='options = { ou = "/elsewhere" }'), 2,
                                                   "has no option --ou"),
    'study: options { "out=/elsewhere" = true }': Row(
        study(analyze='options = { "out=/elsewhere" = true }'), 2, "an option key is a flag's name"),
    "study: options { o = ... } on games": Row(study(games='options = { o = "/elsewhere" }'), 2,
                                               "has no option --o"),
    'study: options { conf = "other.toml" }': Row(study(games='options = { conf = "other.toml" }'), 2,
                                                  "has no option --conf"),
    "study: a non-UTF-8 study file": Row(non_utf8, 2, "not UTF-8"),
    "study: the study file a directory": Row(directory_as("s.toml", ["study", "run", "TMP/s.toml"]), 2,
                                             "Is a directory"),
    "status: events file a directory": Row(directory_as(EVENTS_FILE, ["status", "TMP"]), 2, "Is a directory"),
    "status: a pid of 1e20": Row(events(10**20), 0, f"pid {10**20} gone"),
    "status: pid 1 (alive, not the run)": Row(events(1), 0, "pid 1 gone"),
    "status: a study whose pid is 1e20": Row(study_with_pid(10**20), 0, "the process died"),
    "status: --out's status.md a directory (as a read-only one)": Row(status_out_blocked, 2, "status.md"),
    "monitor: a misspelt path": Row(lambda t: ["monitor", str(t / "nope")], 2, "no such directory"),
    "sae: hook_name = 5": Row(sae({"hook_name": 5}, "--layers", "5"), 2, "5 not supported"),
    "sae: --layers 0-100000000": Row(sae({}, "--layers", "0-100000000"), 2, "beyond any model"),
    "sae: --device cuda:99": Row(sae({}, "--layers", "5", "--device", "cuda:99"), 2, "--device 'cuda:99'"),
    "sae: --events a directory": Row(
        lambda t: [*sae({}, "--layers", "5")(t), "--events", str(t / "ev")], 2,
        "a directory, not an events file"),
    "schema: --out a file": Row(
        lambda t: (t / "f").write_bytes(b"x") and ["schema", "--out", str(t / "f")], 2, "File exists"),
}


@pytest.mark.parametrize("name", list(ROWS))
def test_hostile_input(name, tmp_path, capsys):
    row = ROWS[name]
    argv = row.argv(tmp_path)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == row.code, (code, err)
    assert "Traceback" not in out + err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("harness: error: ") and row.says in err, err
        assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # nothing written
    else:
        assert row.says in out, out
    assert not Path("/elsewhere").exists()


def test_status_never_writes_through_a_link(tmp_path, capsys):
    events(10**20)(tmp_path)
    (tmp_path / "victim").write_bytes(b"precious")
    (tmp_path / "status.md.tmp").symlink_to(tmp_path / "victim")
    assert main(["status", str(tmp_path)]) == 0
    assert (tmp_path / "victim").read_bytes() == b"precious"
    assert not (tmp_path / "status.md").is_symlink()
