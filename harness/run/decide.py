"""One round's decision: ask the model, re-ask within the guard, then the constrained decision
step (docs/protocol.md §1, "Parsing", point 4). The game flow (`runner.py`) only sees the result.

Free mode: free text, parsed; unreadable answers are asked again with new seeds; if none is
readable, some answer had text and `guard.extract` is on, the conversation goes on with the model's
last answer that had text and a new `Final Decision:` line, under the decision pattern (parse kind
"extracted"), whatever the later attempts were (empty, timed out).
Constrained mode: every answer is generated under the pattern right after the cue.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from harness.backends.base import Backend, GenerationRequest, GenerationResult
from harness.config import RunConfig
from harness.game.conditions import Condition
from harness.game.parse import Decision, parse_decision
from harness.game.prompts import (
    BASE_STOP,
    DECISION_MAX_TOKENS,
    DECISION_PATTERN,
    constrained_prompt,
    cued_answer,
    extraction_prompt,
)
from harness.seeds import derive_seed


@dataclass
class Asked:
    """What one decision cost: the accepted call plus the re-asks before it."""

    decision: Decision | None = None
    prompt: str = ""
    result: GenerationResult | None = None
    seed: int | None = None
    empty: int = 0
    unparsed: int = 0
    timeouts: int = 0
    tokens_out: int = 0
    latency: float = 0.0
    last_kind: str = "empty"
    #: The last answer with text (and its seed): what the constrained decision step continues.
    last_text: tuple[GenerationResult, int] | None = None
    extract_prompt: str | None = None
    extract_response: str | None = None


@dataclass(frozen=True)
class RoundCall:
    """Who asks: ids for request names and seeds, the game's condition and current balance."""

    game_id: str
    game_seed: int
    round_no: int
    condition: Condition
    balance: int


class DecisionAsker:
    """Turns a rendered prompt into a decision, counting every call in the run's stats."""

    def __init__(self, config: RunConfig, backend: Backend, formatter, stats, run_id: str):
        self.config = config
        self.backend = backend
        self.formatter = formatter
        self.stats = stats
        self.run_id = run_id
        self.style = config.model.style
        self.constrained = config.game.decision == "constrained"
        self.stop_strings = list(config.generation.stop) + (BASE_STOP if self.style == "base" else [])

    def _request(
        self, call: RoundCall, name: str, prompt: str, seed: int, pattern: bool
    ) -> GenerationRequest:
        gen = self.config.generation
        return GenerationRequest(
            request_id=f"{self.run_id}:{call.game_id}:r{call.round_no}:{name}",
            prompt=prompt,
            prompt_token_ids=self.formatter.encode(prompt),
            seed=seed,
            temperature=gen.temperature,
            top_p=gen.top_p,
            max_tokens=DECISION_MAX_TOKENS if pattern else gen.max_new_tokens,
            stop=[] if pattern else self.stop_strings,
            decision_pattern=DECISION_PATTERN if pattern else None,
        )

    async def _call(self, request: GenerationRequest, out: Asked) -> GenerationResult | None:
        """One model call within the timeout; None when it timed out (and was aborted)."""
        t0 = time.perf_counter()
        try:
            result = await asyncio.wait_for(
                self.backend.generate(request), self.config.guard.request_timeout_s
            )
        except TimeoutError:
            out.latency += time.perf_counter() - t0
            out.timeouts += 1
            await self.backend.abort(request.request_id)
            return None
        out.latency += time.perf_counter() - t0
        self.stats.requests += 1
        self.stats.tokens_out += result.completion_tokens
        out.tokens_out += result.completion_tokens
        return result

    def _parse(self, text: str, finish: str | None, call: RoundCall, cued: bool) -> Decision:
        """Read a decision; `cued`: the answer continues a `Final Decision:` cue of a chat prompt."""
        rules = self.config.game
        if cued:
            text = cued_answer(text, self.style)
        return parse_decision(
            text, bet_type=call.condition.bet_type, balance=call.balance, style=self.style,
            fixed_bet=rules.fixed_bet, min_bet=rules.min_bet, finish_reason=finish,
        )

    async def decide(self, call: RoundCall, rendered: str) -> Asked:
        """Ask until a decision is read (at most 1 + max_retries calls, each with a new seed), then,
        in free mode, the constrained decision step if the answers had no readable decision."""
        prompt = constrained_prompt(rendered, self.style) if self.constrained else rendered
        out = Asked(prompt=prompt)
        for attempt in range(self.config.guard.max_retries + 1):
            seed = derive_seed(call.game_seed, "sample", call.round_no, attempt)
            result = await self._call(self._request(call, f"a{attempt}", prompt, seed, self.constrained), out)
            if result is None:
                out.last_kind = "timeout"
                continue
            out.result, out.seed = result, seed
            decision = self._parse(result.text, result.finish_reason, call, self.constrained)
            out.last_kind = decision.kind
            if decision.kind == "empty":
                out.empty += 1
                continue
            out.last_text = (result, seed)
            if decision.action is None:
                out.unparsed += 1
            else:
                out.decision = decision
                return out
        if out.last_text is not None and self.config.guard.extract:
            out.result, out.seed = out.last_text  # the round records the answer the step continued
            await self._extract(call, out)
        return out

    async def _extract(self, call: RoundCall, out: Asked) -> None:
        """The constrained decision step after the model's own last answer."""
        assert out.result is not None
        out.extract_prompt = extraction_prompt(out.prompt, out.result.text)
        seed = derive_seed(call.game_seed, "extract", call.round_no)
        result = await self._call(self._request(call, "extract", out.extract_prompt, seed, True), out)
        if result is None:
            return
        out.extract_response = result.text
        d = self._parse(result.text, result.finish_reason, call, True)
        if d.action is not None:
            out.decision = Decision(d.action, d.bet, "extracted", d.requested_bet)
            self.stats.extracted += 1
