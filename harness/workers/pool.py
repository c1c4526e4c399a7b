"""Work pulled by Ray workers as they free up, and where a replacement worker goes: pure logic, no Ray.

The driver (`harness.workers.ray_launcher`) cuts the unfinished games into batches of one condition
each, at most `fill` games (`condition_batches`), and keeps each live worker holding about `fill`
games: a worker that finishes a batch gets the next one, so a slow or lost worker never holds more
than its share of the tail. A dead worker's batches go back to the front of the queue for
whichever worker asks next. Replacements are counted over the whole run (`workers.max_restarts`)
and placed by `choose_node`: never on a node that lost a worker while another node has room.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from harness.run.runner import GameSpec


def condition_batches(specs: list[GameSpec], max_games: int | None = None) -> list[list[str]]:
    """The games' ids by condition, in plan order (the first game of each condition decides); a
    condition of more than `max_games` games is cut into consecutive batches of at most that many
    (so an idle worker can help with the last condition)."""
    groups: dict[str, list[str]] = {}
    for s in specs:
        groups.setdefault(s.condition.id, []).append(s.game_id)
    size = max_games or max((len(g) for g in groups.values()), default=1)
    return [group[i : i + size] for group in groups.values() for i in range(0, len(group), size)]


@dataclass
class Batch:
    """Games handed to one worker in one call; `id` is unique in the run."""

    id: int
    game_ids: list[str]


@dataclass
class _Worker:
    held: dict[int, Batch] = field(default_factory=dict)
    live: bool = True


class WorkPool:
    """Which batch goes to which worker, what a worker's death does to its batches, and how many
    replacements are left."""

    def __init__(self, batches: list[list[str]], n_workers: int, *, fill: int, max_restarts: int):
        self._ids = iter(range(1_000_000_000))
        self.queue: deque[Batch] = deque(Batch(next(self._ids), list(b)) for b in batches if b)
        self.workers = [_Worker() for _ in range(n_workers)]
        self.fill = max(fill, 1)
        self.restarts_left = max_restarts
        self.left: list[str] = []
        """Games a worker played but could not finish (errors, not a crash): for a resume."""

    def holding(self, worker: int) -> int:
        return sum(len(b.game_ids) for b in self.workers[worker].held.values())

    def take(self, worker: int) -> list[Batch]:
        """Batches to hand `worker` now: from the queue until it holds `fill` games (at least one
        batch when it holds none)."""
        state = self.workers[worker]
        out: list[Batch] = []
        while state.live and self.queue and (not state.held or self.holding(worker) < self.fill):
            batch = self.queue.popleft()
            state.held[batch.id] = batch
            out.append(batch)
        return out

    def finished(self, worker: int, batch_id: int, unfinished: list[str]) -> None:
        """A batch came back; `unfinished`: its games with no line written (they errored)."""
        self.workers[worker].held.pop(batch_id, None)
        self.left.extend(unfinished)

    def died(self, worker: int, unfinished: list[str]) -> int:
        """The worker is gone; `unfinished`: its held games with no line written. They go back to
        the front of the queue. Returns how many."""
        state = self.workers[worker]
        state.held.clear()
        state.live = False
        if unfinished:
            self.queue.appendleft(Batch(next(self._ids), list(unfinished)))
        return len(unfinished)

    def restart(self, worker: int) -> bool:
        """Spend one replacement on `worker` (False: none left, the worker stays down)."""
        if self.restarts_left < 1:
            return False
        self.restarts_left -= 1
        self.workers[worker].live = True
        return True

    @property
    def busy(self) -> bool:
        """Some game is still queued or held."""
        return bool(self.queue) or any(w.held for w in self.workers)

    def unfinished(self) -> list[str]:
        """Games no worker finished: errored ones and, when no worker is left, the queue."""
        return self.left + [g for b in self.queue for g in b.game_ids]


@dataclass
class NodeView:
    """One node of the cluster as `ray.nodes()` reports it."""

    node_id: str
    alive: bool
    resources: dict[str, float]
    host: str = ""


def choose_node(
    nodes: list[NodeView], need: dict[str, float], in_use: Counter[str], avoid: AbstractSet[str] = frozenset()
) -> str | None:
    """The live node, not in `avoid`, with room for one more worker needing `need` (its totals
    less `in_use` workers of ours), the one with the most room first (the first listed on ties).
    None: no such node."""
    best, best_room = None, -1.0
    for node in nodes:
        if not node.alive or node.node_id in avoid:
            continue
        rooms = [node.resources.get(k, 0.0) / v - in_use[node.node_id] for k, v in need.items() if v > 0]
        room = min(rooms) if rooms else 1.0
        if room >= 1 and room > best_room:
            best, best_room = node.node_id, room
    return best


def worker_needs(
    gpu: bool, gpus_per_worker: int = 1, custom: dict[str, float] | None = None
) -> dict[str, float]:
    """What one worker asks Ray for: its GPUs (or one CPU) and any custom resources. Ray places an
    actor on one node, so a worker of N GPUs holds N GPUs of one machine (a tensor-parallel engine)."""
    need = {"GPU": float(gpus_per_worker)} if gpu else {"CPU": 1.0}
    return need | dict(custom or {})
