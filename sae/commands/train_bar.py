"""The terminal display of `harness sae train`: reading the prompts, then each layer's steps."""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainBar:
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

    def __enter__(self) -> TrainBar:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.__exit__(*exc)

    def prompts(self, done: int) -> None:
        self.progress.update(self.read, completed=done)

    def step(self, layer: int, step: int, info: dict) -> None:
        task = self.layers[layer]
        self.progress.start_task(task)
        text = f"loss {info['loss']:.4f} L0 {info['l0']:.1f} dead {info['dead']}" if info else "resumed"
        self.progress.update(task, completed=step, info=text)
