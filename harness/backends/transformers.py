"""transformers backend: the requests waiting at any moment share one padded `generate` call.

One consumer task drains the queue for `batch_wait_ms` into a batch (up to `max_batch_size`)
and runs it off the event loop; KV cache on, left padding, only new tokens decoded. Sampling is
`harness.backends.sampling.PerRowSampler`: one seeded stream per request, so an answer depends on
its seed, not on which other requests shared its batch.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import Backend, GenerationRequest, GenerationResult
from harness.backends.devices import resolve_device
from harness.backends.sampling import PerRowSampler
from harness.config import BackendConfig, RunConfig
from harness.errors import BackendError


class CancelCriterion:
    """A stopping criterion that ends `generate` at the next decoding step once `flag` is set
    (Ctrl-C): the batch thread then returns within one step instead of finishing the batch."""

    def __init__(self, flag: threading.Event):
        self.flag = flag

    def __call__(self, input_ids, scores, **kwargs):
        import torch

        return torch.full(
            (input_ids.shape[0],), self.flag.is_set(), dtype=torch.bool, device=input_ids.device
        )


def _in_daemon_thread(fn, *args):
    """Run `fn` in a daemon thread: unlike `asyncio.to_thread`, the process does not wait for it
    at exit, so Ctrl-C during a long prefill (one forward pass that no stopping criterion can
    cut) exits at once; the batch's games are not written and replay on resume."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result, error) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def work() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            result, error = None, e
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop is closed: nobody waits for this batch any more

    threading.Thread(target=work, name="transformers-batch", daemon=True).start()
    return future


class DecisionConstraint:
    """Logits mask for rows with a decision pattern: only tokens that keep the answer a prefix of
    the pattern, the end token once it is complete (`harness.backends.constrain`). Rows without a
    pattern are left alone. Runs before the sampler, which then draws among the allowed tokens."""

    def __init__(self, matchers: list, eos_ids: list[int], width: int):
        self.matchers = matchers
        self.eos_ids = eos_ids
        self.width = width

    def __call__(self, input_ids, scores):
        import torch

        for row, matcher in enumerate(self.matchers):
            if matcher is None:
                continue
            answer = input_ids[row, self.width :].tolist()
            if any(t in self.eos_ids for t in answer):  # finished: generate only pads this row
                continue
            allowed = torch.tensor(matcher.next_tokens(answer, self.eos_ids), device=scores.device)
            mask = torch.full_like(scores[row], float("-inf"))
            mask[allowed[allowed < scores.shape[1]]] = 0.0
            scores[row] = scores[row] + mask
        return scores


@dataclass
class _Pending:
    request: GenerationRequest
    future: asyncio.Future = field(repr=False)


class TransformersBackend(Backend):
    def __init__(self, config: RunConfig | None, model_path: str | None, formatter=None):
        self.config = config
        self.model_path = model_path
        self.formatter = formatter
        batching = config.backend if config is not None else BackendConfig()
        self.max_batch_size = batching.max_batch_size
        self.batch_wait_s = batching.batch_wait_ms / 1000
        self.model: Any = None  # a transformers causal LM once loaded
        self.tokenizer: Any = None
        self._queue: asyncio.Queue[_Pending] | None = None
        self._consumer: asyncio.Task | None = None
        self.batches = 0
        self.batch_rows = 0
        self.cancelled = threading.Event()
        self._matchers: dict[str, object] = {}
        self._vocab: list[str] | None = None

    @classmethod
    def from_model(cls, model, formatter) -> TransformersBackend:
        """A backend around a model already in memory (with hooks on it, or random weights); it
        never loads one, and its batching settings are the defaults."""
        backend = cls(None, None, formatter)
        backend.attach(model, formatter.tokenizer)
        return backend

    async def start(self) -> None:
        if self.model is not None:
            return
        self.cancelled.clear()
        await asyncio.to_thread(self.load_model)
        self._queue = asyncio.Queue()
        self._consumer = asyncio.create_task(self._consume(), name="transformers-batcher")

    def load_model(self) -> None:
        """Load the model and tokenizer (blocking). `start()` runs it off the event loop."""
        from transformers import AutoTokenizer

        from harness.backends.checkpoints import load_causal_lm

        if self.config is None or self.model_path is None:
            raise BackendError("no model to load: this backend wraps a model given to from_model")
        try:
            tokenizer = (
                self.formatter.tokenizer
                if self.formatter is not None
                else AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)
            )
            model = load_causal_lm(self.model_path, self.config.model.dtype)
        except OSError as e:
            raise BackendError(f"model.path: cannot load {self.model_path}: {e}") from None
        self.attach(model.to(resolve_device(self.config.backend.device)), tokenizer)

    def attach(self, model, tokenizer) -> None:
        """Use an already loaded model (e.g. for patching with hooks on it)."""
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.device = str(next(model.parameters()).device)
        if self.device.startswith("cuda"):
            self.gpu = self.device.split(":")[1] if ":" in self.device else "0"
        self.eos_ids = self.eos_token_ids()
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.eos_ids[0]

    def eos_token_ids(self) -> list[int]:
        ids = self.model.generation_config.eos_token_id
        ids = [ids] if isinstance(ids, int) else list(ids or [])
        if self.tokenizer.eos_token_id is not None and self.tokenizer.eos_token_id not in ids:
            ids.append(self.tokenizer.eos_token_id)
        return ids

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if self._queue is None:
            raise BackendError("backend not started")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put(_Pending(request, future))
        return await future

    async def _gather(self) -> list[_Pending]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.batch_wait_s
        while len(batch) < self.max_batch_size:
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    batch.append(self._queue.get_nowait())
                else:
                    batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except (TimeoutError, asyncio.QueueEmpty):
                break
        return [p for p in batch if not p.future.done()]

    async def _consume(self) -> None:
        while True:
            batch = await self._gather()
            groups: dict[tuple, list[_Pending]] = {}
            for p in batch:
                groups.setdefault((p.request.max_tokens, tuple(p.request.stop)), []).append(p)
            for group in groups.values():
                try:
                    results = await _in_daemon_thread(self.generate_batch, [p.request for p in group])
                except Exception as e:  # the callers get the error, the batcher lives on
                    for p in group:
                        if not p.future.done():
                            p.future.set_exception(e)
                    continue
                for p, r in zip(group, results, strict=True):
                    if not p.future.done():
                        p.future.set_result(r)

    def _token_ids(self, request: GenerationRequest) -> list[int]:
        if request.prompt_token_ids is not None:
            return request.prompt_token_ids
        if self.formatter is not None:
            return self.formatter.encode(request.prompt)
        return list(self.tokenizer(request.prompt)["input_ids"])

    def generate_batch(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        import torch
        from transformers import GenerationConfig, LogitsProcessorList, StoppingCriteriaList

        prompts = [self._token_ids(r) for r in requests]
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, ids in enumerate(prompts):  # left padding
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            attention[i, width - len(ids) :] = 1
        sampler = PerRowSampler(
            [r.seed for r in requests], [r.temperature for r in requests], [r.top_p for r in requests]
        )
        processors: list[PerRowSampler | DecisionConstraint] = [sampler]
        if any(r.decision_pattern for r in requests):
            matchers = [self.matcher(r.decision_pattern) if r.decision_pattern else None for r in requests]
            processors.insert(0, DecisionConstraint(matchers, self.eos_ids, width))
        stop = list(requests[0].stop)
        gen_config = GenerationConfig(
            do_sample=False,
            max_new_tokens=requests[0].max_tokens,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids,
            stop_strings=stop or None,
        )
        with torch.inference_mode():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention.to(self.device),
                generation_config=gen_config,
                logits_processor=LogitsProcessorList(processors),
                stopping_criteria=StoppingCriteriaList([CancelCriterion(self.cancelled)]),
                tokenizer=self.tokenizer if stop else None,
            )
        self.batches += 1
        self.batch_rows += len(requests)
        new_tokens = out[:, width:].tolist()
        return [
            self.make_result(r, len(p), toks, stop)
            for r, p, toks in zip(requests, prompts, new_tokens, strict=True)
        ]

    def matcher(self, pattern: str):
        """The prefix matcher of `pattern` over this tokenizer's pieces (built once per pattern)."""
        from harness.backends.constrain import PrefixMatcher

        if pattern not in self._matchers:
            if self._vocab is None:
                self._vocab = [
                    self.tokenizer.decode([i], skip_special_tokens=True) for i in range(len(self.tokenizer))
                ]
            self._matchers[pattern] = PrefixMatcher(pattern, self._vocab)
        return self._matchers[pattern]

    def decode_answer(self, tokens: list[int], stop: list[str]) -> tuple[str, list[int], str]:
        """(text, tokens kept, finish reason) of generated `tokens`: cut at EOS and at a stop string."""
        finish = "length"
        kept: list[int] = []
        for t in tokens:
            if t in self.eos_ids:
                finish = "stop"
                break
            kept.append(t)
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
        if cut >= 0:  # like vLLM: the stop string is not part of the output
            text, finish = text[:cut], "stop"
        return text, kept, finish

    def make_result(
        self, request: GenerationRequest, n_prompt: int, tokens: list[int], stop: list[str]
    ) -> GenerationResult:
        text, kept, finish = self.decode_answer(tokens, stop)
        return GenerationResult(
            request_id=request.request_id,
            text=text,
            token_ids=kept,
            finish_reason=finish,
            prompt_tokens=n_prompt,
            completion_tokens=len(kept) + (1 if finish == "stop" and len(kept) < len(tokens) else 0),
        )

    def cancel(self) -> None:
        self.cancelled.set()

    async def shutdown(self) -> None:
        self.cancelled.set()  # a batch still decoding in its thread ends at its next step
        if self._consumer is not None:
            self._consumer.cancel()
            try:
                await self._consumer
            except (asyncio.CancelledError, Exception):
                pass
            self._consumer = None
        if self.model is not None:
            self.model = None
            try:
                import torch

                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
            except ImportError:
                pass

    def memory_stats(self) -> dict[str, float | None]:
        if self.gpu is None:
            return {}
        import torch

        return {"gpu_memory_used_mb": torch.cuda.memory_allocated() / 2**20}
