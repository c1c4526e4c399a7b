"""openai backend: any OpenAI-compatible server or API, through the official `openai` package.

A game's call becomes one `/v1/chat/completions` request (the game's prompt as the user turn; the
server applies its chat template) or one `/v1/completions` request (the prompt rendered here with
the model's own chat template: `model.path` must then be a local model). Transport faults are the
pool's (harness/backends/endpoint_pool.py): repeated, counted apart from the guard's re-asks.

Constrained decoding needs a server that takes a regex: vLLM's `structured_outputs` in the body.
`backend.structured_outputs = "auto"` asks the server once at start. Where it cannot constrain,
`game.decision = "constrained"` is refused, and the guard asks an unreadable free answer once
more in a follow-up turn (parse kind `follow_up`) instead of the extraction step.
"""

from __future__ import annotations

import os
import re
from typing import Any

from harness.backends.base import Backend, GenerationRequest, GenerationResult
from harness.backends.endpoint_pool import EndpointPool
from harness.errors import BackendError, ConfigError

#: Finish reasons the API may give for an answer withheld by the provider.
REFUSED_REASONS = {"content_filter", "refusal", "safety", "recitation"}
#: The probe of `structured_outputs = "auto"`: an answer only a constraining server writes.
PROBE_PATTERN = "Stop"


def api_key(env_name: str | None) -> str | None:
    """The key from the environment variable named in the config; never logged, never written."""
    if env_name is None:
        return None
    key = os.environ.get(env_name)
    if not key:
        raise ConfigError(f"backend.api_key_env: the environment variable {env_name} is not set (or empty)")
    return key


def regex_body(pattern: str | None) -> dict[str, Any]:
    """The request-body fields that constrain an answer on a vLLM server."""
    return {} if pattern is None else {"structured_outputs": {"regex": pattern}}


def chat_messages(request: GenerationRequest, system_prompt: str | None) -> tuple[list[dict[str, str]], bool]:
    """The chat request's messages, and whether the last one (the assistant's) is to be continued."""
    turns = request.turns if request.turns is not None else [("user", request.prompt)]
    messages = [{"role": role, "content": text} for role, text in turns]
    if system_prompt:
        messages.insert(0, {"role": "system", "content": system_prompt})
    return messages, bool(turns) and turns[-1][0] == "assistant"


def finish_reason(raw: str | None, refused: bool) -> str:
    """The engine-neutral finish reason: 'stop', 'length', 'refused' or 'abort'."""
    if refused or raw in REFUSED_REASONS:
        return "refused"
    return {"stop": "stop", "length": "length", "eos": "stop"}.get(raw or "", "abort")


class OpenAIBackend(Backend):
    bounds_own_calls = True

    def __init__(self, config, model_path: str | None, formatter=None):
        self.config = config
        self.backend = config.backend
        self.formatter = formatter
        self.model_name = self.backend.served_model or config.model.path
        self.takes_turns = self.backend.api == "chat"
        self.pool: EndpointPool | None = None
        self._served: dict[str, str] = {}

    async def start(self) -> None:
        if self.pool is not None:
            return
        b = self.backend
        if not b.base_urls:
            raise ConfigError("backend.base_urls: the openai backend needs at least one endpoint URL")
        self.pool = EndpointPool(
            list(b.base_urls), api_key=api_key(b.api_key_env), max_connections=b.max_connections,
            timeout_s=self.config.guard.request_timeout_s, max_transport_retries=b.max_transport_retries,
            requests_per_minute=b.requests_per_minute, tokens_per_minute=b.tokens_per_minute,
        )
        if b.structured_outputs == "none":
            self.can_constrain = False
        elif b.structured_outputs == "auto":
            self.can_constrain = await self._probe_constraint()
        if self.config.game.decision == "constrained" and not self.can_constrain:
            await self.shutdown()
            raise ConfigError(
                f"game.decision: 'constrained' needs an endpoint that constrains answers to a regex "
                f"(vLLM's structured_outputs); {', '.join(b.base_urls)} does not: use decision = 'free'"
            )

    async def _probe_constraint(self) -> bool:
        """Whether the server writes only what a regex allows (one small request)."""
        request = GenerationRequest(request_id="probe", prompt="Say anything.", seed=0, temperature=1.0,
                                    max_tokens=4, decision_pattern=PROBE_PATTERN)
        try:
            result = await self.generate(request)
        except BackendError:
            return False
        return re.fullmatch(PROBE_PATTERN, result.text.strip()) is not None

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.pool is None:
            raise BackendError("backend not started")
        b = self.backend
        extra = dict(b.extra_body) | regex_body(request.decision_pattern if self.can_constrain else None)
        kwargs: dict[str, Any] = dict(model=self.model_name, temperature=request.temperature,
                                      top_p=request.top_p, max_tokens=request.max_tokens)
        if request.stop:
            kwargs["stop"] = list(request.stop)[:4]  # the OpenAI API takes four at most
        if b.send_seed:
            kwargs["seed"] = request.seed
        if b.api == "chat":
            messages, continued = chat_messages(request, self.config.model.system_prompt)
            if continued:  # vLLM: go on writing the assistant's turn (the answer cue) instead of a new one
                extra |= {"add_generation_prompt": False, "continue_final_message": True}
            reply = await self.pool.chat(messages=messages, extra_body=extra or None, **kwargs)
            choice = reply.body["choices"][0]
            message = choice.get("message") or {}
            text = message.get("content") or ""
            refused = bool(message.get("refusal"))
        else:
            reply = await self.pool.completions(prompt=request.prompt, extra_body=extra or None, **kwargs)
            choice = reply.body["choices"][0]
            text, refused = choice.get("text") or "", False
        usage = reply.body.get("usage") or {}
        result = GenerationResult(
            request_id=request.request_id, text=text,
            finish_reason=finish_reason(choice.get("finish_reason"), refused),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            transport_retries=reply.transport_retries, endpoint=reply.endpoint,
            served_model=reply.body.get("model"), system_fingerprint=reply.body.get("system_fingerprint"),
        )
        self._note_served(result)
        return result

    def _note_served(self, result: GenerationResult) -> None:
        """The first model name and fingerprint the server reports (the manifest records them)."""
        if result.served_model and "model" not in self._served:
            self._served["model"] = result.served_model
        if result.system_fingerprint and "system_fingerprint" not in self._served:
            self._served["system_fingerprint"] = result.system_fingerprint

    def served(self) -> dict[str, str]:
        return dict(self._served)

    def endpoint_stats(self) -> list:
        return self.pool.stats() if self.pool is not None else []

    async def shutdown(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            await pool.aclose()
