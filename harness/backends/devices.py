"""Device statistics: NVML memory and utilisation of a physical GPU.

NVML (the `nvidia-ml-py` package, extra `gpu`) is optional: without it `nvml_stats` returns {}.
NVML numbers devices physically and ignores CUDA_VISIBLE_DEVICES, so workers pass it their
physical GPU id.
"""

from __future__ import annotations

_nvml = None  # the initialised pynvml module, False when unavailable


def _nvml_module():
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
