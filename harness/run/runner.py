"""The async game runner: every game is a coroutine, all in flight together (bounded by a
semaphore), each round awaiting the backend. Slot draws and sampling seeds come from the
game's seed alone, so results do not depend on scheduling order.
"""

from __future__ import annotations

import asyncio
import random
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from harness.backends.base import Backend, BackendDied
from harness.backends.formatter import PromptFormatter
from harness.config import RunConfig
from harness.game.conditions import Condition
from harness.game.prompts import build_prompt
from harness.game.rules import GameState, clamp_bet, invalidate, new_game, play_round, stop
from harness.records import GameRecord, RoundRecord
from harness.run.decide import Asked, DecisionAsker, RoundCall
from harness.seeds import derive_seed


@dataclass(frozen=True)
class GameSpec:
    """One game to play: its condition, repetition and seed (derived from the run seed)."""

    condition: Condition
    repetition: int
    run_seed: int

    @property
    def game_id(self) -> str:
        return f"{self.condition.id}-rep{self.repetition:03d}"

    @property
    def seed(self) -> int:
        return derive_seed(self.run_seed, self.condition.id, self.repetition)


def plan_games(config: RunConfig) -> list[GameSpec]:
    """All games of the config, in grid order (repetitions inner)."""
    return [
        GameSpec(c, rep, config.seed)
        for c in config.conditions.resolve()
        for rep in range(config.repetitions)
    ]


@dataclass
class RunStats:
    """Counters for progress events and the closing summary (this process only)."""

    started: float = field(default_factory=time.time)
    games_done: int = 0
    requests: int = 0
    tokens_in: int = 0
    tokens_out: int = 0
    retries: int = 0
    empty_retries: int = 0
    invalid: int = 0
    errors: int = 0
    in_flight: int = 0
    extracted: int = 0
    transport_retries: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    parse_kinds: dict[str, int] = field(default_factory=dict)

    def count_game(self, record: GameRecord) -> None:
        """A game is done once its line is kept: the game sink calls this after the write."""
        self.games_done += 1
        self.outcomes[record.outcome] = self.outcomes.get(record.outcome, 0) + 1
        if record.outcome == "invalid":
            self.invalid += 1


#: Keeps a finished game (writes its line), then counts it (`RunStats.count_game`); an error
#: writing it (a full disk) ends the run.
GameSink = Callable[[GameRecord], Awaitable[None]]
ErrorSink = Callable[[str, str | None], Awaitable[None]]

_NO_DECISION_REASONS = {
    "empty": "empty answers exhausted the retry guard",
    "timeout": "model calls timed out",
    "unparsed": "no readable decision (unparsed_policy = invalid)",
    "refused": "the endpoint refused every answer (content filter)",
}


class GameRunner:
    def __init__(
        self,
        config: RunConfig,
        backend: Backend,
        formatter: PromptFormatter,
        *,
        run_id: str,
        worker: int = 0,
        gpu: str | None = None,
        stats: RunStats | None = None,
    ):
        self.config = config
        self.backend = backend
        self.formatter = formatter
        self.run_id = run_id
        self.worker = worker
        self.gpu = gpu
        self.stats = stats or RunStats()
        self.rules = config.game
        self.style = config.model.style
        self.asker = DecisionAsker(config, backend, formatter, self.stats, run_id)

    def _forced_round(self, state: GameState, cond: Condition, rng: random.Random) -> RoundRecord:
        """The real $10 opening round with a forced result (128 grid)."""
        before = state.balance
        bet = clamp_bet(None, bet_type="fixed", balance=before, rules=self.rules)
        played = play_round(state, bet, self.rules, rng, forced_win=cond.first_result == "W")
        return RoundRecord(round=played.round, forced=True, balance_before=before, decision="bet", bet=bet,
                           win=played.win, balance_after=played.balance_after, parse_kind=None)

    def _round_fields(self, round_no: int, balance: int, asked: Asked) -> dict:
        """Record fields every decision round has, whatever was decided."""
        calls = asked.empty + asked.unparsed + asked.timeouts + asked.refused
        retries = max(calls - (0 if asked.decision else 1), 0)
        self.stats.retries += retries
        self.stats.empty_retries += asked.empty
        res = asked.result
        return dict(
            round=round_no, balance_before=balance, retries=retries,
            empty_retries=asked.empty, unparsed_retries=asked.unparsed, timeouts=asked.timeouts,
            prompt=asked.prompt, response=res.text if res else None, seed=asked.seed,
            finish_reason=res.finish_reason if res else None, tokens_in=res.prompt_tokens if res else 0,
            tokens_out=asked.tokens_out, latency_s=round(asked.latency, 4),
            transport_retries=asked.transport_retries,
            extract_prompt=asked.extract_prompt, extract_response=asked.extract_response,
        )

    async def _decision_round(
        self, spec: GameSpec, state: GameState, rng: random.Random
    ) -> tuple[RoundRecord, str | None]:
        """Ask for one decision and apply it; returns the round and, for an invalid end, why."""
        cond, round_no = spec.condition, state.next_round
        rendered = self.formatter.render(build_prompt(state, cond, self.rules, self.style))
        call = RoundCall(spec.game_id, spec.seed, round_no, cond, state.balance)
        asked = await self.asker.decide(call, rendered)
        common = self._round_fields(round_no, state.balance, asked)
        decision = asked.decision
        if decision is None:  # a policy ends the game; never a voluntary stop
            kind = "empty" if asked.last_kind == "timeout" else asked.last_kind
            record = RoundRecord(**common, decision=None, bet=None, win=None, balance_after=state.balance,
                                 parse_kind=kind)
            if kind == "unparsed" and self.config.guard.unparsed_policy == "no_decision":
                state.outcome = "no_decision"
                return record, None
            invalidate(state)
            return record, _NO_DECISION_REASONS[asked.last_kind]
        self.stats.parse_kinds[decision.kind] = self.stats.parse_kinds.get(decision.kind, 0) + 1
        if decision.action == "stop":
            stop(state)
            return RoundRecord(**common, decision="stop", bet=None, win=None, balance_after=state.balance,
                               parse_kind=decision.kind), None
        bet = decision.bet if decision.bet is not None else clamp_bet(
            None, bet_type=cond.bet_type, balance=state.balance, rules=self.rules)
        played = play_round(state, bet, self.rules, rng)
        return RoundRecord(**common, decision="bet", bet=bet, requested_bet=decision.requested_bet,
                           win=played.win, balance_after=played.balance_after, parse_kind=decision.kind), None

    async def play(self, spec: GameSpec) -> GameRecord:
        """Play one game to its end: the forced round if any, then decisions until it finishes."""
        started = time.time()
        state = new_game(self.rules)
        rng = random.Random(derive_seed(spec.seed, "slot"))
        rounds: list[RoundRecord] = []
        invalid_reason = None
        if spec.condition.first_result is not None:
            rounds.append(self._forced_round(state, spec.condition, rng))
        while not state.finished:
            record, invalid_reason = await self._decision_round(spec, state, rng)
            rounds.append(record)
        return self._game_record(spec, state, rounds, invalid_reason, started)

    def _game_record(
        self, spec: GameSpec, state: GameState, rounds: list[RoundRecord], invalid_reason: str | None,
        started: float,
    ) -> GameRecord:
        placed = [r for r in rounds if r.bet is not None]
        assert state.outcome is not None
        return GameRecord(
            game_id=spec.game_id, run_id=self.run_id, model=self.config.model.name,
            condition=spec.condition.record(), repetition=spec.repetition, seed=spec.seed,
            run_seed=spec.run_seed, outcome=state.outcome, final_balance=state.balance, n_rounds=len(placed),
            total_bet=sum(r.bet or 0 for r in placed),
            total_won=sum(int(self.rules.payout_multiplier * (r.bet or 0)) for r in placed if r.win),
            retries=sum(r.retries for r in rounds), invalid_reason=invalid_reason, rounds=rounds,
            worker=self.worker, gpu=self.gpu, started=started, wall_s=round(time.time() - started, 3),
        )

    async def run(self, specs: list[GameSpec], on_game: GameSink, on_error: ErrorSink,
                  sem: asyncio.Semaphore | None = None) -> None:
        """Play all `specs` concurrently. A game that raises is reported and left for a rerun.
        `sem` bounds the games in flight across calls (a Ray worker plays several batches at once)."""
        sem = sem or asyncio.Semaphore(self.config.concurrency)

        async def one(spec: GameSpec) -> None:
            async with sem:
                self.stats.in_flight += 1
                try:
                    record = await self.play(spec)
                except BackendDied:
                    raise  # no game can succeed: the worker reports it once and stops
                except Exception as e:  # noqa: BLE001 - reported, the other games go on
                    self.stats.errors += 1
                    await on_error(f"{type(e).__name__}: {e} | {traceback.format_exc(limit=3)}", spec.game_id)
                    if self.stats.errors >= 10 and self.stats.games_done == 0:
                        raise
                    return
                finally:
                    self.stats.in_flight -= 1
                await on_game(record)

        async with asyncio.TaskGroup() as tg:
            for spec in specs:
                tg.create_task(one(spec))
