"""GPUs for worker processes: which ids `--gpus` names, and each child's environment.

`--gpus all` asks NVML (`harness.backends.devices`) and falls back to `torch.cuda.device_count()`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from harness.backends.devices import _nvml_module
from harness.errors import ConfigError

CPU = "cpu"  # a worker without a GPU in `RunConfig.gpus`


def visible_gpus(environ: Mapping[str, str] | None = None) -> list[str]:
    """Physical ids of the GPUs this process may use: CUDA_VISIBLE_DEVICES if set, else all."""
    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return [
            g.strip() for g in environ["CUDA_VISIBLE_DEVICES"].split(",") if g.strip() and g.strip() != "-1"
        ]
    nvml = _nvml_module()
    if nvml is not None:
        try:
            return [str(i) for i in range(nvml.nvmlDeviceGetCount())]
        except Exception:  # noqa: BLE001
            pass
    try:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    except ImportError:
        return []


def resolve_gpus(
    entries: list[str] | str | None, environ: Mapping[str, str] | None = None
) -> list[str] | None:
    """The worker list of `--gpus` / `RunConfig.gpus`: GPU ids ("0", "3") and "cpu" entries.

    Accepts "0,1,3", "all" (every visible GPU; an error when there is none), or a list of those.
    """
    if entries is None:
        return None
    if isinstance(entries, str):
        entries = [e for e in entries.split(",") if e.strip()]
    entries = [e.strip().lower() for e in entries]
    if not entries:
        raise ConfigError("gpus: empty list; give GPU ids such as 0,1, 'all', or use --workers N for CPU")
    if "all" in entries:
        if entries != ["all"]:
            raise ConfigError(f"gpus: 'all' cannot be combined with other ids, got {','.join(entries)}")
        found = visible_gpus(environ)
        if not found:
            raise ConfigError("gpus: 'all' found no CUDA GPU (NVML and torch.cuda see none); "
                              "use --workers N for CPU worker processes")
        return found
    for e in entries:
        if e != CPU and not e.isdigit():
            raise ConfigError(f"gpus: {e!r} is not a GPU id (0, 1, ...), 'all' or 'cpu'")
    ids = [e for e in entries if e != CPU]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"gpus: a GPU is named twice in {','.join(entries)}; one worker per GPU")
    return entries


def worker_env(
    gpu: str | None, n_cpu_workers: int = 1, base: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The child's own environment: a copy of `base` with CUDA_VISIBLE_DEVICES set to its GPU
    ("" for a CPU worker). CPU workers share the cores via OMP_NUM_THREADS unless the user set it.
    The parent's os.environ is never changed."""
    env = dict(os.environ if base is None else base)
    env["CUDA_VISIBLE_DEVICES"] = "" if gpu is None else str(gpu)
    if gpu is None and "OMP_NUM_THREADS" not in env:
        env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // max(1, n_cpu_workers)))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env
