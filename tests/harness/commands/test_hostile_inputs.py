"""Hostile inputs and faults (issue 21's list), each a case: the command succeeds, or it prints one
line naming the file or field and exits 2 (a full disk: exit 1); never a traceback, nothing of the
user's written through a link, no temporary file left."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness.cli import main
from harness.rundir.reader import read_game_lines

IDS = 'ids = ["fixed-none-BASE", "variable-W-GMP"]'
SCRIPTED = """
seed = 1
repetitions = 2
[model]
name = "scripted"
path = "unused"
[game]
max_rounds = 5
[conditions]
ids = ["fixed-none-BASE", "variable-W-GMP"]
[backend]
kind = "scripted"
script = ["Final Decision: Bet $10", "Final Decision: Stop"]
"""


@dataclass
class Case:
    """argv, built in a fresh folder; what it must end in; what must hold afterwards."""

    argv: Callable[[Path], list[str]]
    code: int
    says: str = ""
    after: Callable[[Path], None] | None = None


def config(tmp: Path, text: str = SCRIPTED, name: str = "c.toml") -> str:
    (tmp / name).write_text(text)
    return str(tmp / name)


def games(tmp: Path, *flags: str, text: str = SCRIPTED) -> list[str]:
    return ["run", "games", "--config", config(tmp, text), "--out", str(tmp / "run"), "--quiet", *flags]


def edited(**fields: str) -> str:
    """SCRIPTED with `[table] key = value` set (`game__fixed_bet="1000"`)."""
    text = SCRIPTED
    for dotted, value in fields.items():
        table, key = dotted.split("__")
        text = text.replace(f"[{table}]\n", f"[{table}]\n{key} = {value}\n") if f"[{table}]" in text \
            else text + f"[{table}]\n{key} = {value}\n"
    return text


def nothing_written(tmp: Path) -> None:
    assert not (tmp / "run").exists()


def played(tmp: Path, reps: int = 2) -> Path:
    assert main(games(tmp, "--reps", str(reps))) == 0
    return tmp / "run"


VICTIM = b"precious\nno newline"


def linked(name: str, keep: bool = False) -> Callable[[Path], list[str]]:
    """A run whose `name` has been replaced by a link to a file outside it (holding what it held,
    with `keep`), then resumed."""

    def argv(tmp: Path) -> list[str]:
        run = played(tmp)
        (tmp / "victim").write_bytes((run / name).read_bytes() if keep else VICTIM)
        (run / name).unlink(missing_ok=True)
        (run / name).symlink_to(tmp / "victim")
        return games(tmp, "--reps", "3")

    return argv


def untouched(tmp: Path) -> None:
    assert (tmp / "victim").read_bytes() == VICTIM


def untouched_manifest(tmp: Path) -> None:
    manifest = tmp / "run" / "manifest.json"
    assert not manifest.is_symlink() and json.loads(manifest.read_text())["games_total"] == 6
    assert json.loads((tmp / "victim").read_text())["games_total"] == 4


def damaged(edit: Callable[[dict], object], line: int = 0) -> Callable[[Path], list[str]]:
    """A played run with one game line edited (`edit` changes the parsed line, or returns bytes)."""

    def argv(tmp: Path) -> list[str]:
        run = played(tmp)
        lines = (run / "games.jsonl").read_bytes().splitlines(keepends=True)
        game = json.loads(lines[line])
        new = edit(game)
        lines[line] = new if isinstance(new, bytes) else (json.dumps(game) + "\n").encode()
        (run / "games.jsonl").write_bytes(b"".join(lines))
        return ["analyze", str(run), "--no-figures", "--bootstrap", "10"]

    return argv


def completeness(column: str, value: int) -> Callable[[Path], None]:
    def check(tmp: Path) -> None:
        import pandas as pd

        table = pd.read_csv(tmp / "run" / "analysis" / "tables" / "completeness.csv")
        assert int(table[column].iloc[0]) == value

    return check


CASES = {
    # --- config files and flags
    "config not UTF-8": Case(
        lambda t: ["run", "games", "--config", str(_bytes(t, b"\xff\xfe[model]\n")), "--out", str(t / "run")],
        2, "not UTF-8 text (byte 0: 0xff)", nothing_written),
    "config a directory": Case(lambda t: ["run", "games", "--config", str(t), "--out", str(t / "run")],
                               2, "Is a directory", nothing_written),
    "config /dev/zero": Case(lambda t: ["run", "games", "--config", "/dev/zero", "--out", str(t / "run")],
                             2, "/dev/zero: config file is not a regular file", nothing_written),
    "config over 1 MiB": Case(
        lambda t: ["run", "games", "--config", config(t, "# " + "x" * (1 << 20)), "--out", str(t / "run")],
        2, "larger than 1 MiB", nothing_written),
    "--reps 1000000000": Case(
        lambda t: games(t, "--reps", "1000000000"), 2,
        "+ command-line flags: repetitions: 2 conditions x 1,000,000,000 repetitions is 2,000,000,000 games; "
        "a run holds at most 1,000,000", nothing_written),
    "payout_multiplier = inf": Case(
        lambda t: games(t, text=edited(game__payout_multiplier="inf")), 2,
        "game.payout_multiplier: Input should be a finite number", nothing_written),
    "payout_multiplier = 1e300": Case(lambda t: games(t, text=edited(game__payout_multiplier="1e300")), 2,
                                      "game.payout_multiplier: Input should be less than or equal to 1000"),
    "win_probability = nan": Case(lambda t: games(t, text=edited(game__win_probability="nan")), 2,
                                  "game.win_probability: Input should be a finite number"),
    "temperature = inf": Case(lambda t: games(t, text=edited(generation__temperature="inf")), 2,
                              "generation.temperature: Input should be a finite number", nothing_written),
    'stop = [""]': Case(lambda t: games(t, text=edited(generation__stop='[""]')), 2,
                        "generation.stop: an empty stop string", nothing_written),
    "fixed_bet = 1000, balance 100": Case(lambda t: games(t, text=edited(game__fixed_bet="1000")), 2,
                                          "game.fixed_bet: 1000 is larger than initial_balance (100)"),
    "min_bet = 200, balance 100": Case(lambda t: games(t, text=edited(game__min_bet="200")), 2,
                                       "game.min_bet: 200 is larger than initial_balance (100)"),
    "--max-new-tokens 10**11": Case(
        lambda t: games(t, "--max-new-tokens", str(10**11)), 2,
        "generation.max_new_tokens: Input should be less than or equal to 131072"),
    "--max-rounds 10**12": Case(lambda t: games(t, "--max-rounds", str(10**12)), 2, "game.max_rounds"),
    "seed = 2**64": Case(lambda t: games(t, "--seed", str(2**64)), 2, "seed: Input should be less than"),
    '--out ""': Case(lambda t: games(t)[:5] + ["", "--quiet"], 2, "out: '' does not name a directory"),
    'out = "\\u0000"': Case(lambda t: games(t, text='out = "a\\u0000b"\n' + SCRIPTED)[:4] + ["--quiet"], 2,
                            "out: 'a\\x00b' does not name a directory"),
    "--out a file": Case(lambda t: games(t)[:5] + [str(_bytes(t, b"x"))], 2, "Not a directory"),
    "--workers 10**9": Case(lambda t: games(t, "--workers", str(10**9)), 2, "--workers: need 1 to 1024"),
    # --- condition lists
    "--conditions a,a,b": Case(
        lambda t: games(t, "--conditions", "variable-L-GMP,variable-L-GMP,variable-L-MGP"), 2,
        "conditions.ids: 'variable-L-GMP' is listed twice", nothing_written),
    "--conditions a,A'": Case(lambda t: games(t, "--conditions", "variable-L-GMP,variable-L-MGP"), 2,
                              "conditions.ids: 'variable-L-MGP' is the same as 'variable-L-GMP'"),
    "--conditions ,,,": Case(lambda t: games(t, "--conditions", ",,,"), 2,
                             "conditions.ids: an empty condition id", nothing_written),
    '--conditions ""': Case(lambda t: games(t, "--conditions", ""), 2, "conditions.ids: an empty condition"),
    "ids = []": Case(lambda t: games(t, text=SCRIPTED.replace(IDS, "ids = []")),
                     2, "conditions.ids: empty list", nothing_written),
    "components = [GMP, PMG]": Case(
        lambda t: games(t, text=SCRIPTED.replace(IDS, 'components = ["GMP", "PMG"]')),
        2, "conditions.components: 'PMG' is the same as 'GMP'"),
    "bet_types = []": Case(lambda t: games(t, text=SCRIPTED.replace(IDS, "bet_types = []")),
                           2, "conditions.bet_types: empty list"),
    # --- links under run file names
    "games.jsonl a link": Case(linked("games.jsonl"), 2, "games.jsonl: is a symbolic link", untouched),
    "events.jsonl a link": Case(linked("events.jsonl"), 2, "events.jsonl: is a symbolic link", untouched),
    "run.lock a link": Case(linked("run.lock"), 2, "run.lock: is a symbolic link", untouched),
    "manifest.json a link": Case(linked("manifest.json", keep=True), 0, "", untouched_manifest),
    "manifest.tmp a link": Case(linked("manifest.tmp"), 0, "", untouched),
    # --- analyze
    "analyze: bad UTF-8 in a string": Case(
        damaged(lambda g: (json.dumps(g) + "\n").encode().replace(b'"scripted"', b'"scr\xff\xfe"', 1)),
        0, "", completeness("bad_lines", 1)),
    "analyze: an integer beyond int64": Case(damaged(lambda g: g.update(repetition=10**30)), 0, "",
                                             completeness("bad_lines", 1)),
    "analyze: manifest.json is []": Case(
        lambda t: ["analyze", str(_manifest(played(t), "[]")), "--no-figures", "--bootstrap", "10"], 0, ""),
    "analyze: games.jsonl a directory": Case(
        lambda t: ["analyze", str(_mkdir(t / "run" / "games.jsonl").parent)], 2, "games.jsonl: not a file"),
    "analyze: the same run twice": Case(lambda t: ["analyze", str(played(t)), str(t / "run"), "--out",
                                                   str(t / "out")], 2, "the same run as"),
    "analyze: --out a file": Case(lambda t: ["analyze", str(played(t)), "--out", str(_bytes(t, b"x"))], 2,
                                  "File exists"),
    "analyze: bankrupt, balance -500": Case(
        damaged(lambda g: g.update(outcome="bankrupt", final_balance=-500)), 0, "",
        completeness("inconsistent", 1)),
    "analyze: n_rounds 99": Case(
        damaged(lambda g: g.update(n_rounds=99)), 0, "", completeness("inconsistent", 1)),
    "analyze: rounds = [] with n_rounds > 0": Case(damaged(lambda g: g.update(rounds=[], n_rounds=3)),
                                                   0, "", completeness("inconsistent", 1)),
    # --- other writers
    "schema --out a file": Case(lambda t: ["schema", "--out", str(_bytes(t, b"x"))], 2, "File exists"),
}


def _bytes(tmp: Path, data: bytes) -> Path:
    (tmp / "afile").write_bytes(data)
    return tmp / "afile"


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _manifest(run: Path, text: str) -> Path:
    (run / "manifest.json").write_text(text)
    return run


def run_cli(argv: list[str], capsys) -> tuple[int, list[str]]:
    code = main(argv)  # a traceback would be an exception out of main: the test fails on it
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input(name, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    case = CASES[name]
    argv = case.argv(tmp_path)
    planted = set(tmp_path.rglob("*.tmp"))
    capsys.readouterr()
    started = time.monotonic()
    code, err = run_cli(argv, capsys)
    if case.code == 0:
        assert code == 0, err
    else:
        assert (code, len(err)) == (case.code, 1), err
        assert err[0].startswith("harness: error: ") and case.says in err[0], err
    assert time.monotonic() - started < 60
    assert set(tmp_path.rglob("*.tmp")) == planted
    if case.after:
        case.after(tmp_path)


# --- faults of the machine: a read-only folder and a full disk (tmpfs, where this machine may mount)


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size, read_only) -> a fresh tmpfs under tmp_path, unmounted afterwards."""
    mounted: list[Path] = []

    def mount(size: str, read_only: bool = False) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        target = tmp_path / f"fs{len(mounted)}"
        target.mkdir()
        opts = f"size={size}" + (",ro" if read_only else "")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(target)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"this machine does not allow mounting a tmpfs: {r.stderr.decode().strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_out_not_writable(tmp_path, capsys, tmpfs):
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        says = "Permission denied"
    else:
        locked, says = tmpfs("1m", read_only=True), "Read-only file system"
    argv = ["run", "games", "--config", config(tmp_path), "--out", str(locked / "run"), "--quiet"]
    code, err = run_cli(argv, capsys)
    assert (code, len(err)) == (2, 1) and err[0] == f"harness: error: {locked / 'run'}: {says}"


def test_disk_full_mid_run_one_line_counts_what_is_kept_and_resumes(tmp_path, capsys, tmpfs):
    disk = tmpfs("200k")
    cfg = config(tmp_path, SCRIPTED.replace("repetitions = 2", "repetitions = 300"))
    argv = ["run", "games", "--config", cfg, "--out", str(disk / "run"), "--quiet"]
    code, err = run_cli(argv, capsys)
    kept = read_game_lines(disk / "run" / "games.jsonl")
    n = len(kept.lines)
    assert 0 < n < 600 and kept.duplicates == 0
    path = disk / "run" / "games.jsonl"
    assert (code, err) == (1, [f"harness: error: no space left on device writing {path}: "
                                f"{n} games kept, rerun to resume"])
    ends = [e for e in (disk / "run" / "events.jsonl").read_bytes().splitlines() if b'"run_end"' in e]
    assert all(json.loads(e)["games_done"] == n for e in ends)
    assert not [p.name for p in (disk / "run").iterdir() if p.name.endswith(".tmp")]
    subprocess.run(["mount", "-o", "remount,size=4m", str(disk)], check=True)
    assert run_cli(argv, capsys)[0] == 0
    again = read_game_lines(disk / "run" / "games.jsonl")
    assert len(again.lines) == 600 and again.duplicates == 0
    assert [g.data for g in again.lines[:n]] == [g.data for g in kept.lines]


def test_disk_full_at_start_leaves_no_temporary_file(tmp_path, capsys, tmpfs):
    disk = tmpfs("64k")
    try:
        (disk / "filler").write_bytes(b"x" * (1 << 20))
    except OSError:
        pass
    argv = ["run", "games", "--config", config(tmp_path), "--out", str(disk / "run"), "--quiet"]
    code, err = run_cli(argv, capsys)
    assert (code, len(err)) == (1, 1)
    assert err[0].startswith(f"harness: error: no space left on device writing {disk / 'run'}")
    assert not list(disk.rglob("*.tmp"))
