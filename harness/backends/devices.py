"""Devices, dtypes and device statistics: the one place that decides what "auto" means.

torch is imported inside the functions, so importing this module stays light (`harness --help`).
NVML (the `nvidia-ml-py` package, extra `gpu`) is optional: without it `nvml_stats` returns {}.
NVML numbers devices physically and ignores CUDA_VISIBLE_DEVICES, so callers pass it the
physical GPU id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: Floating-point dtypes the model and SAE loaders accept, by name.
DTYPE_NAMES = ("float32", "bfloat16", "float16")

_nvml: Any = None  # the initialised pynvml module, False when unavailable


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda[:N]'; 'auto' is CUDA when torch sees a GPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def check_device(device: str) -> None:
    """A device this machine has: 'auto', 'cpu', or 'cuda[:N]' with N below the GPUs torch sees
    (ConfigError otherwise), so a missing GPU is one line before a model is loaded."""
    import re

    from harness.errors import ConfigError

    match = re.fullmatch(r"cuda(?::(\d+))?", device)
    if device in ("auto", "cpu"):
        return
    if match is None:
        raise ConfigError(f"--device {device!r}: neither 'auto', 'cpu' nor 'cuda[:N]'")
    import torch

    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ConfigError(f"--device {device!r}: this machine's torch sees no CUDA GPU (use --device cpu)")
    if int(match.group(1) or 0) >= count:
        raise ConfigError(f"--device {device!r}: no such GPU ({count} visible: cuda:0 to cuda:{count - 1})")


def default_dtype(device: str) -> str:
    """float32 on CPU (bfloat16 matmuls are slow there), bfloat16 on a GPU."""
    return "float32" if resolve_device(device) == "cpu" else "bfloat16"


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype named `name` (one of DTYPE_NAMES); ValueError naming the choices otherwise."""
    import torch

    if name not in DTYPE_NAMES:
        raise ValueError(f"dtype {name!r} not one of {', '.join(DTYPE_NAMES)}")
    return getattr(torch, name)


def _nvml_module() -> Any:
    global _nvml
    if _nvml is None:
        try:
            import pynvml

            pynvml.nvmlInit()
            _nvml = pynvml
        except Exception:  # noqa: BLE001 - not installed, no driver: no stats
            _nvml = False
    return _nvml or None


def nvml_stats(gpu: str | int) -> dict[str, float]:
    """Memory used/total (MiB) and utilisation (%) of physical GPU `gpu`; {} without NVML."""
    nvml = _nvml_module()
    if nvml is None:
        return {}
    try:
        handle = nvml.nvmlDeviceGetHandleByIndex(int(str(gpu).rsplit(":", 1)[-1]))
        mem = nvml.nvmlDeviceGetMemoryInfo(handle)
        util = nvml.nvmlDeviceGetUtilizationRates(handle)
    except Exception:  # noqa: BLE001 - a bad id or a lost device must not stop a run
        return {}
    return {
        "gpu_memory_used_mb": mem.used / 2**20,
        "gpu_memory_total_mb": mem.total / 2**20,
        "gpu_utilization": float(util.gpu),
    }
