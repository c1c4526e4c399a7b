"""Wall time of one run with and without Ray, and the tail of a Ray run where one of three workers fails.

    python bench/ray_bench.py [--reps 5] [--delay 0.05] [--workers 3] [--ray ADDRESS] [--dir DIR]

The same scripted run (16 conditions x --reps games, each answer taking --delay seconds, 4 games in
flight per worker) is played four ways, each into a fresh run directory, by the real CLI in a
subprocess: one process; --workers N local processes; --ray ADDRESS --workers N (default `local`, a
throwaway one-machine Ray that each run starts; give a running cluster's address to leave its start
out); and the same again with one worker's actor killed (SIGKILL) after its first game, whose output
tail is printed. Every run is checked: every game written once.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONDITIONS = [
    f"{bet}-{goal}-{prompt}"
    for bet in ("fixed", "variable")
    for goal in ("none", "L")
    for prompt in ("BASE", "GM", "GMP", "GMHWP")
]

SCRIPT = [f"Final Decision: {answer}" for answer in ("Bet $10", "Bet $5", "Bet $10", "Stop")]


def write_config(folder: Path, reps: int, delay: float) -> Path:
    path = folder / "bench.toml"
    path.write_text(f"""
seed = 7
repetitions = {reps}
concurrency = 4
progress_interval_s = 0.5
[model]
name = "scripted"
path = "none"
[game]
max_rounds = 10
[conditions]
ids = {json.dumps(CONDITIONS)}
[backend]
kind = "scripted"
script = {json.dumps(SCRIPT)}
script_delay_s = {delay}
""")
    return path


def games(run: Path) -> list[str]:
    return [json.loads(line)["game_id"] for line in (run / "games.jsonl").read_text().splitlines()]


def play(
    config: Path, run: Path, total: int, *extra: str, kill_after_first_game: bool = False
) -> tuple[float, str]:
    argv = [
        sys.executable,
        "-m",
        "harness",
        "run",
        "games",
        "--config",
        str(config),
        "--out",
        str(run),
        "--quiet",
        *extra,
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if kill_after_first_game:
        events = run / "events.jsonl"
        while proc.poll() is None:
            lines = [json.loads(x) for x in events.read_text().splitlines()] if events.exists() else []
            starts = {e["worker"]: e["pid"] for e in lines if e["type"] == "run_start"}
            if 1 in starts and any(e["type"] == "game_done" and e["worker"] == 1 for e in lines):
                os.kill(starts[1], signal.SIGKILL)
                break
            time.sleep(0.02)
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} exited {proc.returncode}:\n{out}")
    ids = games(run)
    if not len(ids) == len(set(ids)) == total:
        raise SystemExit(f"{run}: {len(ids)} game lines, {len(set(ids))} games, {total} expected")
    return wall, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--ray", default="local", help="The cluster for the Ray runs (default: local).")
    parser.add_argument("--dir", type=Path, help="Where the runs go (default: a temporary folder).")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="ray_bench_"))
    folder.mkdir(parents=True, exist_ok=True)
    config = write_config(folder, args.reps, args.delay)
    n = str(args.workers)
    total = 16 * args.reps
    for label, extra in [
        ("one process", ()),
        (f"{n} worker processes", ("--workers", n)),
        (f"Ray {args.ray}, {n} CPU actors", ("--ray", args.ray, "--workers", n)),
    ]:
        wall, _ = play(config, folder / "".join(c if c.isalnum() else "_" for c in label), total, *extra)
        print(f"{label:32s} {total} games  {wall:6.1f} s", flush=True)
    wall, out = play(
        config, folder / "ray_one_fails", total, "--ray", args.ray, "--workers", n, kill_after_first_game=True
    )
    print(f"{'Ray, worker 1 killed':32s} {total} games  {wall:6.1f} s", flush=True)
    print("\ntail of the run with a failed worker:")
    print("\n".join(line for line in out.splitlines()[-6:]))


if __name__ == "__main__":
    main()
