"""Event builders for monitor tests (real `harness.records` events written with `model_dump_json()`),
a settable clock, and a wait for the app's follower thread."""

from __future__ import annotations

from pathlib import Path

from harness.records import ErrorEvent, Event, GameDoneEvent, ProgressEvent, RunEndEvent, RunStartEvent

T0 = 1_790_000_000.0  # a fixed "now" base, so nothing depends on the wall clock
RUN_ID = "run-test"


def start(t: float, *, worker: int = 0, gpu: str | None = "0", total: int = 10, already: int = 0,
          kind: str = "games", model: str = "smollm2") -> RunStartEvent:
    return RunStartEvent(
        time=T0 + t, run_id=RUN_ID, worker=worker, gpu=gpu, kind=kind, model=model,  # type: ignore[arg-type]
        games_total=total, games_already_done=already, resumed=already > 0, pid=1234,
    )


def progress(t: float, done: int, *, worker: int = 0, gpu: str | None = "0", total: int = 10,
             kind: str = "games", **kw: float) -> ProgressEvent:
    fields: dict = dict(requests=done * 8, requests_per_s=4.0, tokens_per_s=120.0,
                        avg_requests_per_s=3.5, avg_tokens_per_s=100.0)
    fields.update(kw)
    return ProgressEvent(
        time=T0 + t, run_id=RUN_ID, worker=worker, gpu=gpu, kind=kind,  # type: ignore[arg-type]
        games_done=done, games_total=total, **fields,
    )


def game(t: float, game_id: str, condition: str, outcome: str, *, worker: int = 0,
         gpu: str | None = "0", kind: str = "games") -> GameDoneEvent:
    return GameDoneEvent(
        time=T0 + t, run_id=RUN_ID, worker=worker, gpu=gpu, kind=kind,  # type: ignore[arg-type]
        game_id=game_id, condition_id=condition, outcome=outcome,  # type: ignore[arg-type]
        final_balance=0 if outcome == "bankrupt" else 90, n_rounds=3, retries=0,
    )


def error(
    t: float, message: str, *, worker: int = 0, gpu: str | None = "0", fatal: bool = False
) -> ErrorEvent:
    return ErrorEvent(time=T0 + t, run_id=RUN_ID, worker=worker, gpu=gpu, message=message, fatal=fatal)


def end(t: float, done: int, *, worker: int = 0, gpu: str | None = "0", total: int = 10,
        status: str = "complete") -> RunEndEvent:
    return RunEndEvent(
        time=T0 + t, run_id=RUN_ID, worker=worker, gpu=gpu, games_done=done, games_total=total,
        wall_s=t, status=status,  # type: ignore[arg-type]
    )


def append(path: Path, *events: Event, raw: str = "") -> None:
    """Append events as JSON lines, then `raw` verbatim (e.g. half a line, as a writer mid-write)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for ev in events:
            f.write(ev.model_dump_json() + "\n")
        f.write(raw)


def busy_run(path: Path) -> None:
    """A two-GPU run with a CPU-side patch pass: one worker fine, one stalled, one erroring."""
    append(
        path,
        start(0, worker=0, gpu="0", total=40), start(0, worker=1, gpu="1", total=40),
        progress(60, 12, worker=0, gpu="0", total=40, gpu_memory_used_mb=31_000, gpu_memory_total_mb=81_920,
                 gpu_utilization=97, retries=3, empty_retries=1, in_flight=8),
        progress(30, 5, worker=1, gpu="1", total=40, gpu_memory_used_mb=29_500, gpu_memory_total_mb=81_920,
                 gpu_utilization=0, invalid=1, errors=1, in_flight=8),
        game(20, "g1", "variable-L-GMP", "bankrupt"), game(25, "g2", "variable-L-GMP", "stopped"),
        game(28, "g3", "fixed-none-BASE", "stopped", worker=1, gpu="1"),
        error(29, "timeout after 60s on game g4 [request 17]", worker=1, gpu="1"),
        start(0, worker=0, gpu=None, total=6, kind="patch"),
        progress(55, 2, worker=0, gpu=None, total=6, kind="patch"),
    )


class Clock:
    """A settable "now" for the app."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def until(pilot, predicate, timeout: float = 10.0) -> None:
    """Let the follower thread poll until `predicate()` holds."""
    for _ in range(int(timeout / 0.02)):
        if predicate():
            return
        await pilot.pause(0.02)
    raise AssertionError("condition not reached")
