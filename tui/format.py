"""Short text for numbers in small panels. Times are relative or UTC, so output never depends
on the machine's time zone (snapshot tests rely on that)."""

from __future__ import annotations

import time


def duration(seconds: float | None) -> str:
    """`42s`, `3m05s`, `2h07m`; `--` when unknown."""
    if seconds is None:
        return "--"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 100 * 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d"


def rate(x: float) -> str:
    """A per-second rate in at most 5 characters: `0.42`, `12.3`, `845`, `12.3k`."""
    if x < 10:
        return f"{x:.2f}"
    if x < 100:
        return f"{x:.1f}"
    if x < 10_000:
        return f"{x:.0f}"
    return f"{x / 1000:.1f}k"


def gpu_label(gpu: str | None, node: str | None = None) -> str:
    """`GPU 0` for a GPU id, `CPU` for a CPU worker; `node-b GPU 0` when the run spans machines
    (each numbers its GPUs from 0)."""
    label = "CPU" if gpu is None else f"GPU {gpu}"
    return f"{node} {label}" if node else label


def memory(used_mb: float | None, total_mb: float | None) -> str | None:
    """`31.2/80.0G`; None when the events carry no memory figures."""
    if used_mb is None:
        return None
    total = f"/{total_mb / 1024:.1f}" if total_mb else ""
    return f"{used_mb / 1024:.1f}{total}G"


def clock_utc(t: float) -> str:
    """`HH:MM:SS` of a unix time, in UTC."""
    return time.strftime("%H:%M:%S", time.gmtime(t))
