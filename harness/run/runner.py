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

from harness.backends.base import Backend, BackendDied, GenerationRequest, GenerationResult
from harness.backends.formatter import PromptFormatter
from harness.config import RunConfig
from harness.game.conditions import Condition
from harness.game.parse import Decision, parse_decision
from harness.game.prompts import BASE_STOP, build_prompt
from harness.game.rules import GameState, clamp_bet, invalidate, new_game, play_round, stop
from harness.records import GameRecord, RoundRecord
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
        GameSpec(c, rep, config.seed) for c in config.conditions.resolve() for rep in range(config.repetitions)
    ]


@dataclass
class RunStats:
    """Counters for progress events and the closing summary (this process only)."""

    started: float = field(default_factory=time.time)
    games_done: int = 0
    requests: int = 0
    tokens_out: int = 0
    retries: int = 0
    empty_retries: int = 0
    invalid: int = 0
    errors: int = 0
    in_flight: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)


@dataclass
class _Round:
    """What one decision cost: the accepted call plus the re-asks before it."""

    decision: Decision | None = None
    result: GenerationResult | None = None
    seed: int | None = None
    empty: int = 0
    unparsed: int = 0
    timeouts: int = 0
    tokens_out: int = 0
    latency: float = 0.0
    last_kind: str = "empty"


GameSink = Callable[[GameRecord], Awaitable[None]]
ErrorSink = Callable[[str, str | None], Awaitable[None]]


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
        self.stop_strings = list(config.generation.stop) + (BASE_STOP if self.style == "base" else [])

    async def _ask(self, game_id: str, game_seed: int, round_no: int, state: GameState, cond: Condition, rendered: str, token_ids) -> _Round:
        """Ask until a decision is read, at most 1 + max_retries calls, each with a new seed."""
        out = _Round()
        guard = self.config.guard
        gen = self.config.generation
        for attempt in range(guard.max_retries + 1):
            seed = derive_seed(game_seed, "sample", round_no, attempt)
            request = GenerationRequest(
                request_id=f"{self.run_id}:{game_id}:r{round_no}:a{attempt}",
                prompt=rendered,
                prompt_token_ids=token_ids,
                seed=seed,
                temperature=gen.temperature,
                top_p=gen.top_p,
                max_tokens=gen.max_new_tokens,
                stop=self.stop_strings,
            )
            t0 = time.perf_counter()
            try:
                result = await asyncio.wait_for(self.backend.generate(request), guard.request_timeout_s)
            except TimeoutError:
                out.latency += time.perf_counter() - t0
                out.timeouts += 1
                out.last_kind = "timeout"
                await self.backend.abort(request.request_id)
                continue
            out.latency += time.perf_counter() - t0
            self.stats.requests += 1
            self.stats.tokens_out += result.completion_tokens
            out.tokens_out += result.completion_tokens
            out.result, out.seed = result, seed
            decision = parse_decision(
                result.text,
                bet_type=cond.bet_type,
                balance=state.balance,
                style=self.style,
                fixed_bet=self.rules.fixed_bet,
                min_bet=self.rules.min_bet,
            )
            out.last_kind = decision.kind
            if decision.kind == "empty":
                out.empty += 1
                continue
            if decision.action is None:
                out.unparsed += 1
                continue
            out.decision = decision
            return out
        return out

    async def play(self, spec: GameSpec) -> GameRecord:
        started = time.time()
        cond = spec.condition
        state = new_game(self.rules)
        rng = random.Random(derive_seed(spec.seed, "slot"))
        rounds: list[RoundRecord] = []
        invalid_reason = None
        if cond.first_result is not None:  # a real $10 round with a forced result
            before = state.balance
            bet = clamp_bet(None, bet_type="fixed", balance=before, rules=self.rules)
            played = play_round(state, bet, self.rules, rng, forced_win=cond.first_result == "W")
            rounds.append(
                RoundRecord(round=played.round, forced=True, balance_before=before, decision="bet", bet=bet,
                            win=played.win, balance_after=played.balance_after, parse_kind=None)
            )
        while not state.finished:
            round_no = state.next_round
            rendered = self.formatter.render(build_prompt(state, cond, self.rules, self.style))
            asked = await self._ask(spec.game_id, spec.seed, round_no, state, cond, rendered, self.formatter.encode(rendered))
            retries = asked.empty + asked.unparsed + asked.timeouts - (0 if asked.decision else 1)
            self.stats.retries += max(retries, 0)
            self.stats.empty_retries += asked.empty
            res = asked.result
            common = dict(
                round=round_no, balance_before=state.balance, retries=max(retries, 0),
                empty_retries=asked.empty, unparsed_retries=asked.unparsed, timeouts=asked.timeouts,
                prompt=rendered, response=res.text if res else None, seed=asked.seed,
                finish_reason=res.finish_reason if res else None, tokens_in=res.prompt_tokens if res else 0,
                tokens_out=asked.tokens_out, latency_s=round(asked.latency, 4),
            )
            decision = asked.decision
            if decision is None and asked.last_kind == "unparsed" and self.config.guard.unparsed_policy == "stop":
                decision = Decision("stop", None, "unparsed")
            if decision is None:
                invalid_reason = {
                    "empty": "empty answers exhausted the retry guard",
                    "timeout": "model calls timed out",
                    "unparsed": "no readable decision (unparsed_policy = invalid)",
                }[asked.last_kind]
                rounds.append(RoundRecord(**common, decision=None, bet=None, win=None,
                                          balance_after=state.balance, parse_kind=asked.last_kind if asked.last_kind != "timeout" else "empty"))
                invalidate(state)
                break
            if decision.action == "stop":
                rounds.append(RoundRecord(**common, decision="stop", bet=None, win=None,
                                          balance_after=state.balance, parse_kind=decision.kind))
                stop(state)
                break
            bet = decision.bet if decision.bet is not None else clamp_bet(None, bet_type=cond.bet_type, balance=state.balance, rules=self.rules)
            played = play_round(state, bet, self.rules, rng)
            rounds.append(RoundRecord(**common, decision="bet", bet=bet, requested_bet=decision.requested_bet,
                                      win=played.win, balance_after=played.balance_after, parse_kind=decision.kind))
        placed = [r for r in rounds if r.bet is not None]
        assert state.outcome is not None
        return GameRecord(
            game_id=spec.game_id, run_id=self.run_id, model=self.config.model.name, condition=cond.record(),
            repetition=spec.repetition, seed=spec.seed, run_seed=spec.run_seed, outcome=state.outcome,
            final_balance=state.balance, n_rounds=len(placed), total_bet=sum(r.bet or 0 for r in placed),
            total_won=sum(int(self.rules.payout_multiplier * (r.bet or 0)) for r in placed if r.win),
            retries=sum(r.retries for r in rounds), invalid_reason=invalid_reason, rounds=rounds,
            worker=self.worker, gpu=self.gpu, started=started, wall_s=round(time.time() - started, 3),
        )

    async def run(self, specs: list[GameSpec], on_game: GameSink, on_error: ErrorSink) -> None:
        """Play all `specs` concurrently. A game that raises is reported and left for a rerun."""
        sem = asyncio.Semaphore(self.config.concurrency)

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
                self.stats.games_done += 1
                self.stats.outcomes[record.outcome] = self.stats.outcomes.get(record.outcome, 0) + 1
                if record.outcome == "invalid":
                    self.stats.invalid += 1
                await on_game(record)

        async with asyncio.TaskGroup() as tg:
            for spec in specs:
                tg.create_task(one(spec))
