"""The one device and dtype choice every backend, SAE pass and benchmark uses."""

import pytest
import torch

from harness.backends.devices import DTYPE_NAMES, default_dtype, resolve_device, torch_dtype


def test_auto_is_cuda_only_when_torch_sees_a_gpu():
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("cpu") == "cpu"


def test_default_dtype_follows_the_device():
    assert default_dtype("cpu") == "float32" and default_dtype("cuda:0") == "bfloat16"


def test_dtype_names_map_to_torch_and_a_bad_name_lists_the_choices():
    assert [torch_dtype(n) for n in DTYPE_NAMES] == [torch.float32, torch.bfloat16, torch.float16]
    with pytest.raises(ValueError, match="'float8' not one of float32, bfloat16, float16"):
        torch_dtype("float8")


def test_a_bad_sae_dtype_is_a_load_error():
    from sae.loading import as_dtype
    from sae.model import SAELoadError

    with pytest.raises(SAELoadError, match="SAE dtype 'int8' not one of"):
        as_dtype("int8")
