"""Benchmark `harness analyze` on a large synthetic run (default 100,000 games).

    python bench/analyze_bench.py [--games 100000] [--text-chars 300] [--dir DIR] [--keep]

Writes a games.jsonl of games played by a random policy under the real rules (128-condition
grid, forced opening round, prompt and answer text of --text-chars characters per round so the
file is as heavy to parse as a real one), checks a sample of lines against the pydantic record,
then times load, metrics + tables, and writing (tables, figures, report) separately.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import tempfile
import time
from pathlib import Path

from harness.game.conditions import grid
from harness.records import GAME_ADAPTER, SCHEMA_VERSION


def _round(n, before, bet, win, *, forced=False, decision="bet", kind="final_decision", text=""):
    after = before if bet is None else before - bet + (3 * bet if win else 0)
    return {
        "round": n, "forced": forced, "balance_before": before, "decision": None if forced else decision,
        "bet": bet, "requested_bet": bet, "win": win, "balance_after": after,
        "parse_kind": None if forced else kind, "retries": 0, "empty_retries": 0, "unparsed_retries": 0,
        "timeouts": 0, "prompt": text or None, "response": text[: len(text) // 3] or None, "seed": n,
        "finish_reason": "stop", "tokens_in": 120, "tokens_out": 40, "latency_s": 0.5,
    }  # fmt: skip


def synthetic_game(cond, rep: int, rng: random.Random, text: str, max_rounds: int = 100) -> dict:
    """One game under the default rules with a random, condition-sensitive policy."""
    balance = 100
    rounds = []
    if cond.first_result is not None:
        win = cond.first_result == "W"
        rounds.append(_round(1, balance, 10, win, forced=True))
        balance = rounds[-1]["balance_after"]
    risk = 0.1 + 0.05 * len(cond.component_set)  # more components, bigger bets, fewer stops
    outcome = "max_rounds"
    while len(rounds) < max_rounds:
        if rng.random() < 0.25 - risk / 2:
            kind = "fallback" if rng.random() < 0.02 else "final_decision"
            rounds.append(_round(len(rounds) + 1, balance, None, None, decision="stop", kind=kind, text=text))
            outcome = "stopped"
            break
        if cond.bet_type == "fixed":
            bet = min(10, balance)
        else:
            bet = max(5, min(balance, int(balance * rng.uniform(0.05, 2 * risk))))
        win = rng.random() < 0.3
        rounds.append(_round(len(rounds) + 1, balance, bet, win, text=text))
        balance = rounds[-1]["balance_after"]
        if balance <= 0:
            outcome = "bankrupt"
            break
    bets = [r for r in rounds if r["bet"] is not None]
    return {
        "type": "game", "schema_version": SCHEMA_VERSION, "game_id": f"{cond.id}-rep{rep:04d}",
        "run_id": "bench",
        "model": "synthetic-bench", "condition": cond.record().model_dump(), "repetition": rep, "seed": rep,
        "run_seed": 0, "outcome": outcome, "final_balance": balance, "n_rounds": len(bets),
        "total_bet": sum(r["bet"] for r in bets), "total_won": sum(3 * r["bet"] for r in bets if r["win"]),
        "retries": 0, "invalid_reason": None, "rounds": rounds, "worker": 0, "gpu": None, "started": 0.0,
        "wall_s": 1.0,
    }  # fmt: skip


def write_run(path: Path, n_games: int, text_chars: int, seed: int = 0) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    conditions = grid("128")
    text = ("You are playing a slot machine game at a casino. " * (text_chars // 50 + 1))[:text_chars]
    with open(path / "games.jsonl", "w") as f:
        for i in range(n_games):
            cond = conditions[i % len(conditions)]
            f.write(json.dumps(synthetic_game(cond, i // len(conditions), rng, text)) + "\n")
    (path / "manifest.json").write_text(json.dumps({"run_id": "bench", "games_total": n_games}))
    with open(path / "games.jsonl") as f:  # the synthetic lines are real records
        for _, line in zip(range(50), f, strict=False):
            GAME_ADAPTER.validate_json(line)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", type=int, default=100_000)
    ap.add_argument(
        "--text-chars", type=int, default=300, help="prompt characters per round (answer: a third)"
    )
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--dir", type=Path, default=None, help="reuse/keep the synthetic run here")
    ap.add_argument("--no-figures", action="store_true")
    args = ap.parse_args()
    from harness.analysis.load import load_run
    from harness.analysis.pipeline import analyse, write
    from harness.analysis.stats import Boot

    base = args.dir or Path(tempfile.mkdtemp(prefix="analyze_bench_"))
    run_dir = base / "run"
    t0 = time.perf_counter()
    if not (run_dir / "games.jsonl").exists():
        write_run(run_dir, args.games, args.text_chars)
    t1 = time.perf_counter()
    c1 = time.process_time()
    run = load_run(run_dir)
    t2 = time.perf_counter()
    results = analyse([run], boot=Boot(resamples=args.bootstrap))
    t3 = time.perf_counter()
    write(results, base / "analysis", figures=not args.no_figures)
    t4 = time.perf_counter()
    c4 = time.process_time()
    size_mb = (run_dir / "games.jsonl").stat().st_size / 1e6
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"games {len(run.games):,}  rounds {len(run.rounds):,}  file {size_mb:,.0f} MB  "
        f"(generated in {t1 - t0:.1f} s)"
    )
    print(f"load {t2 - t1:.2f} s  analyse {t3 - t2:.2f} s  write {t4 - t3:.2f} s  "
          f"total {t4 - t1:.2f} s (CPU {c4 - c1:.2f} s)  peak RSS {rss_mb:,.0f} MB  "
          f"cpus {os.cpu_count()}")  # fmt: skip
    if args.dir is None:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
