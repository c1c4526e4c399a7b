"""A backend that answers from a script: for unit tests of the runner and for the guard tests.

An answer may be a string, or a callable taking the request (so a test can answer by seed,
by prompt, or raise). Strings cycle per request, in call order. A request with a decision
pattern gets the first part of its answer that matches the pattern, or "" (as a constrained
engine can write nothing else).
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Callable, Sequence

from harness.backends.base import Backend, GenerationRequest, GenerationResult

Answer = str | Callable[[GenerationRequest], str]


class ScriptedBackend(Backend):
    def __init__(self, script: Sequence[Answer], delay_s: float = 0.0):
        self._cycle = itertools.cycle(list(script))
        self.delay_s = delay_s
        self.requests: list[GenerationRequest] = []
        self.in_flight = 0
        self.peak_in_flight = 0

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        self.requests.append(request)
        answer = next(self._cycle)
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
        finally:
            self.in_flight -= 1
        text = answer(request) if callable(answer) else answer
        if request.decision_pattern is not None:
            m = re.search(request.decision_pattern, text)
            text = m.group(0) if m else ""
        n_out = len(text.split())
        return GenerationResult(
            request_id=request.request_id,
            text=text,
            finish_reason="stop",
            prompt_tokens=len(request.prompt.split()),
            completion_tokens=n_out,
        )
