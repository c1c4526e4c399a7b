"""One round's decision: ask the model, re-ask within the guard, then the constrained decision
step (docs/protocol.md §1, "Parsing", point 4). The game flow (`runner.py`) only sees the result.

Free mode: free text, parsed; unreadable answers are asked again with new seeds; if none is
readable, some answer had text and `guard.extract` is on, the conversation goes on with the model's
last answer that had text and a new `Final Decision:` line, under the decision pattern (parse kind
"extracted"), whatever the later attempts were (empty, timed out).
Constrained mode: every answer is generated under the pattern right after the cue.
On an endpoint that cannot constrain (`Backend.can_constrain` False) the extraction step is a
follow-up turn instead: the conversation, the model's last answer with text, and one more user turn
asking for the decision line only, answered freely and parsed (parse kind "follow_up": the model's
own words, asked for again). A refusal (an endpoint's content filter) is re-asked like an empty
answer but counted as a refusal; a round whose every answer was refused has parse kind "refused".
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal

from harness.backends.base import Backend, GenerationRequest, GenerationResult
from harness.config import RunConfig
from harness.game.conditions import Condition
from harness.game.parse import Decision, parse_decision
from harness.game.prompts import (
    ANSWER_CUE,
    BASE_STOP,
    DECISION_MAX_TOKENS,
    DECISION_PATTERN,
    FOLLOW_UP,
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
    refused: int = 0
    transport_retries: int = 0
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
        self, call: RoundCall, name: str, prompt: str, seed: int, pattern: bool,
        turns: list[tuple[str, str]] | None = None,
    ) -> GenerationRequest:
        gen = self.config.generation
        if turns is None and self.backend.takes_turns and pattern and self.style == "chat":
            # a chat endpoint: the answer cue opens the assistant's turn, which the server continues
            turns = [("user", prompt.removesuffix(ANSWER_CUE)), ("assistant", ANSWER_CUE)]
        return GenerationRequest(
            turns=turns,
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
        limit = None if self.backend.bounds_own_calls else self.config.guard.request_timeout_s
        try:
            result = await asyncio.wait_for(self.backend.generate(request), limit)
        except TimeoutError:
            out.latency += time.perf_counter() - t0
            out.timeouts += 1
            await self.backend.abort(request.request_id)
            return None
        out.latency += time.perf_counter() - t0
        self.stats.requests += 1
        self.stats.tokens_in += result.prompt_tokens
        self.stats.tokens_out += result.completion_tokens
        self.stats.transport_retries += result.transport_retries
        out.tokens_out += result.completion_tokens
        out.transport_retries += result.transport_retries
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
            if result.finish_reason == "refused":
                out.refused += 1
                out.last_kind = "refused"
                continue
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
            if self.backend.can_constrain:
                await self._extract(call, out)
            elif self.backend.takes_turns and self.style == "chat":
                await self._follow_up(call, out)
        return out

    async def _follow_up(self, call: RoundCall, out: Asked) -> None:
        """One more user turn asking for the decision line, answered freely (endpoints that cannot
        constrain): the model's own words, asked for again, never a constrained choice."""
        assert out.result is not None
        turns = [("user", out.prompt), ("assistant", out.result.text), ("user", FOLLOW_UP)]
        out.extract_prompt = FOLLOW_UP
        seed = derive_seed(call.game_seed, "follow_up", call.round_no)
        request = self._request(call, "follow_up", out.prompt, seed, False, turns=turns)
        await self._decision_step(call, out, request, "follow_up")

    async def _extract(self, call: RoundCall, out: Asked) -> None:
        """The constrained decision step after the model's own last answer."""
        assert out.result is not None
        out.extract_prompt = extraction_prompt(out.prompt, out.result.text)
        seed = derive_seed(call.game_seed, "extract", call.round_no)
        request = self._request(call, "extract", out.extract_prompt, seed, True)
        await self._decision_step(call, out, request, "extracted")

    async def _decision_step(self, call: RoundCall, out: Asked, request: GenerationRequest,
                             kind: Literal["extracted", "follow_up"]) -> None:
        """Ask once more after the re-asks failed; a readable answer is the round's decision under
        parse kind `kind` (a constrained answer continues the cue; a follow-up is read as free text)."""
        result = await self._call(request, out)
        if result is None:
            return
        out.extract_response = result.text
        d = self._parse(result.text, result.finish_reason, call, request.decision_pattern is not None)
        if d.action is not None:
            out.decision = Decision(d.action, d.bet, kind, d.requested_bet)
            if kind == "extracted":
                self.stats.extracted += 1
