"""Inference engines behind one small async interface (`Backend`).

Heavy engines are imported only when chosen, so `harness --help` stays instant.
"""

from harness.backends.base import Backend, GenerationRequest, GenerationResult

__all__ = ["Backend", "GenerationRequest", "GenerationResult", "create_backend"]


def create_backend(config, model_path: str | None, formatter=None) -> Backend:
    """Build the backend named by `config.backend.kind` (not started)."""
    kind = config.backend.kind
    if kind == "transformers":
        from harness.backends.transformers import TransformersBackend

        return TransformersBackend(config, model_path, formatter)
    if kind == "vllm":
        from harness.backends.vllm import VLLMBackend

        return VLLMBackend(config, model_path, formatter)
    if kind == "scripted":
        from harness.backends.scripted import ScriptedBackend

        return ScriptedBackend(
            config.backend.script or ["Final Decision: Stop"], config.backend.script_delay_s
        )
    raise ValueError(f"unknown backend {kind!r}")
