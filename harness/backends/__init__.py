"""Inference engines behind one small async interface (`Backend`), each registered by name in
`registry` (its factory checks the engine's package before importing it).

Heavy engines are imported only when chosen, so `harness --help` stays instant.
"""

from harness.backends.base import Backend, GenerationRequest, GenerationResult
from harness.backends.registry import create

__all__ = ["Backend", "GenerationRequest", "GenerationResult", "create_backend"]


def create_backend(config, model_path: str | None, formatter=None) -> Backend:
    """Build the backend named by `config.backend.kind` (not started). "auto" is resolved to vllm or
    transformers when the config is read (`harness.config.RunConfig`)."""
    return create(config.backend.kind, config, model_path, formatter)
