"""Every terminal progress display and closing summary, in one module: the bar of a one-process
run, the live view of many workers (fed by following events.jsonl), the line of an SAE pass and
the bars of SAE training. Domain code reports through callbacks and results; only command modules
build these and print."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from harness.errors import HarnessError
from harness.records import OUTCOMES, GameRecord, read_event
from harness.rundir.jsonl import JsonlTail
from harness.workers.scheduler import MultiResult, Slot, describe


def format_outcomes(counts: Mapping[str, int]) -> str:
    """"bankrupt 3 stopped 5 max_rounds 0 no_decision 0 invalid 1": every outcome, zeros included."""
    return " ".join(f"{outcome} {counts.get(outcome, 0)}" for outcome in OUTCOMES)


class _LiveBars:
    """A rich `Progress` shown while the block runs (`with view:`)."""

    progress: Progress

    def __enter__(self) -> Self:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)


class GameProgress(_LiveBars):
    """A rich progress bar fed by `update(record, stats)` after each game."""

    def __init__(self, total: int, done: int = 0, enabled: bool = True):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]games"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled,
        )
        self.task = self.progress.add_task("games", total=total, completed=done, info="")

    def update(self, record: GameRecord, stats) -> None:
        info = f"{format_outcomes(stats.outcomes)} retries {stats.retries}"
        self.progress.update(self.task, advance=1, info=info)


def decision_counts(parse_kinds: dict[str, int]) -> str:
    """'final_decision 120, fallback 3, extracted 9': how the decisions of this run were read."""
    order = ("final_decision", "first_line", "extracted", "follow_up", "fallback")
    return ", ".join(f"{k} {parse_kinds[k]}" for k in order if parse_kinds.get(k)) or "none"


def spent(tokens_in: int, tokens_out: int, pricing) -> str:
    """' | cost 0.42 USD' from the config's prices per million tokens; '' without prices."""
    if pricing is None:
        return ""
    cost = tokens_in / 1e6 * pricing.input_per_million + tokens_out / 1e6 * pricing.output_per_million
    return f" | cost {cost:,.4f} {pricing.currency}"


def print_summary(out: str, result, pricing=None) -> None:
    """Closing summary: games, outcomes, decisions by parse kind, retries, tokens (and their cost when
    the config gives prices), wall time, requests/s, tokens/s."""
    s = result.stats
    wall = max(result.wall_s, 1e-9)
    print(
        f"{out}: {result.games_done}/{result.games_total} games ({s.games_done} this run) | "
        f"{format_outcomes(s.outcomes)} | decisions: {decision_counts(s.parse_kinds)} | "
        f"retries {s.retries} (empty {s.empty_retries}) errors {s.errors} | "
        + (f"transport retries {s.transport_retries} | " if s.transport_retries else "")
        + f"tokens {s.tokens_in:,} in, {s.tokens_out:,} out | "
        f"wall {wall:.1f} s | {s.requests / wall:.2f} requests/s | {s.tokens_out / wall:.1f} tokens/s"
        + spent(s.tokens_in, s.tokens_out, pricing)
        + ("" if result.status == "complete" else f" | status {result.status}: rerun to resume")
    )


class MultiProgress(_LiveBars):
    """Live view: a bar for the run and one per worker, fed by following events.jsonl."""

    def __init__(self, events_path: Path, slots: list[Slot], shares: list[list[str]] | None, done: int,
                 total: int, *, enabled: bool = True):
        """`shares` None: work is pulled (Ray), each worker's bar grows with what it is handed."""
        self.tail = JsonlTail(events_path, from_end=True)
        self.outcomes: dict[str, int] = {}
        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=self.console, disable=not enabled,
        )
        self.run_task = self.progress.add_task("games", total=total, completed=done, info="")
        sizes = [len(share) for share in shares] if shares is not None else [None] * len(slots)
        self.tasks = {
            slot.index: self.progress.add_task(f"{describe(slot.gpu)} w{slot.index}", total=size, info="")
            for slot, size in zip(slots, sizes, strict=True) if size != 0
        }

    def say(self, message: str) -> None:
        self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def tick(self) -> None:
        while True:
            read = self.tail.read()
            for line in read.lines:
                try:
                    self._apply(read_event(line))
                except (ValueError, HarnessError):
                    continue  # a torn line closed by close_torn_line; the view is best effort
            if not read.more:
                return

    def _apply(self, ev) -> None:
        task = self.tasks.get(ev.worker)
        if ev.type == "game_done":
            self.outcomes[ev.outcome] = self.outcomes.get(ev.outcome, 0) + 1
            self.progress.advance(self.run_task)
            info = " ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
            self.progress.update(self.run_task, info=info)
        if task is None:
            return
        if ev.type == "run_start":
            self.progress.update(task, total=ev.games_total, completed=ev.games_already_done, info="starting",
                                 description=f"{describe(ev.gpu)} w{ev.worker}")
        elif ev.type == "game_done":
            self.progress.advance(task)
        elif ev.type == "progress":
            self.progress.update(task, total=ev.games_total)
            info = f"{ev.requests_per_s:.1f} req/s {ev.tokens_per_s:.0f} tok/s retries {ev.retries}"
            if ev.gpu_memory_used_mb is not None:
                info += f" mem {ev.gpu_memory_used_mb / 1024:.1f} GiB"
            if ev.gpu_utilization is not None:
                info += f" util {ev.gpu_utilization:.0f}%"
            self.progress.update(task, info=info)
        elif ev.type == "run_end":
            self.progress.update(task, completed=ev.games_done, info=ev.status)


class PassLine:
    """The stderr line of an SAE pass: `sae features: 40/128 prompts`, redrawn in place."""

    def __init__(self, kind: str, unit: str = "prompts"):
        self.kind, self.unit = kind, unit

    def __call__(self, done: int, total: int) -> None:
        print(f"\rsae {self.kind}: {done}/{total} {self.unit}", end="" if done < total else "\n",
              file=sys.stderr, flush=True)


class TrainBar(_LiveBars):
    """A rich bar for reading the prompts and one per layer, with loss, L0 and dead features."""

    def __init__(self, prompts: int, layers: list[int], steps: int):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TimeRemainingColumn(),
            console=Console(stderr=True),
        )
        self.read = self.progress.add_task("prompts", total=prompts, info="")
        self.layers = {
            L: self.progress.add_task(f"layer {L}", total=steps, info="", start=False) for L in layers
        }

    def prompts(self, done: int) -> None:
        self.progress.update(self.read, completed=done)

    def step(self, layer: int, step: int, info: dict) -> None:
        task = self.layers[layer]
        self.progress.start_task(task)
        text = f"loss {info['loss']:.4f} L0 {info['l0']:.1f} dead {info['dead']}" if info else "resumed"
        self.progress.update(task, completed=step, info=text)


def print_multi_summary(out: str, result: MultiResult) -> None:
    """Closing summary of a run with several workers (processes or Ray actors)."""
    print(f"{out}: {result.games_done}/{result.games_total} games ({result.this_run} this run) | "
          f"{len(result.workers)} workers ({', '.join(result.workers)}) | {format_outcomes(result.outcomes)} "
          f"| worker failures {result.deaths} | wall {result.wall_s:.1f} s"
          + ("" if result.complete else " | incomplete: rerun to resume"))


def print_estimate(out: str, estimate, *, as_json: bool = False) -> None:
    """`--dry-run`: one row per scenario (requests, prompt and output tokens, cost)."""
    if as_json:
        print(estimate.model_dump_json(indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    priced = estimate.currency is not None
    table = Table(title=f"{out}: {estimate.games:,} games to play ({estimate.games_done:,} already done)",
                  title_justify="left")
    for name in ("scenario", "requests", "prompt tokens", "output tokens (at most)"):
        table.add_column(name, justify="left" if name == "scenario" else "right")
    if priced:
        table.add_column(f"cost, {estimate.currency} (at most)", justify="right")
    for s in estimate.scenarios:
        row = [s.name, f"{s.requests:,}", f"{s.prompt_tokens:,}", f"{s.output_tokens:,}"]
        table.add_row(*row, *([f"{s.cost:,.2f}"] if priced else []))
    console = Console(width=120)
    console.print(table)
    for s in estimate.scenarios:
        console.print(f"  {s.name}: {s.assumption}", highlight=False, markup=False)
    console.print(f"  tokens counted with {estimate.tokens_counted_by}; nothing was started or written.",
                  highlight=False)
    if not priced:
        console.print("  no [pricing] in the config: no cost.", highlight=False, markup=False)
