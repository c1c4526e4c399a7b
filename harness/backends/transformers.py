"""transformers backend: the requests waiting at any moment share one padded `generate` call.

One consumer task drains the queue for `batch_wait_ms` into a batch (up to `max_batch_size`)
and runs it off the event loop; KV cache on, left padding, only new tokens decoded. Sampling is
`harness.backends.sampling.PerRowSampler`: one seeded stream per request, so an answer depends on
its seed, not on which other requests shared its batch.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from harness.backends.base import Backend, GenerationRequest, GenerationResult
from harness.backends.devices import resolve_device
from harness.backends.sampling import PerRowSampler
from harness.config import BackendConfig, RunConfig
from harness.errors import BackendError


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
                    results = await asyncio.to_thread(self.generate_batch, [p.request for p in group])
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
        from transformers import GenerationConfig, LogitsProcessorList

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
                logits_processor=LogitsProcessorList([sampler]),
                tokenizer=self.tokenizer if stop else None,
            )
        self.batches += 1
        self.batch_rows += len(requests)
        new_tokens = out[:, width:].tolist()
        return [self.make_result(r, len(p), toks, stop) for r, p, toks in zip(requests, prompts, new_tokens, strict=True)]

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

    def make_result(self, request: GenerationRequest, n_prompt: int, tokens: list[int], stop: list[str]) -> GenerationResult:
        text, kept, finish = self.decode_answer(tokens, stop)
        return GenerationResult(
            request_id=request.request_id,
            text=text,
            token_ids=kept,
            finish_reason=finish,
            prompt_tokens=n_prompt,
            completion_tokens=len(kept) + (1 if finish == "stop" and len(kept) < len(tokens) else 0),
        )

    async def shutdown(self) -> None:
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
