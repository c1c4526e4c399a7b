"""Markdown formatting for report.md: numbers, intervals, p-values, pipe tables.
A missing value (None or NaN) prints as an en dash."""

from __future__ import annotations

import math


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def num(v, digits: int = 3) -> str:
    if _missing(v):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def ci(row, col: str, scale: float = 1.0, digits: int = 3) -> str:
    v = row[col]
    if _missing(v):
        return "–"
    lo, hi = row.get(f"{col}_lo"), row.get(f"{col}_hi")
    if _missing(lo):
        return f"{scale * v:.{digits}f}"
    return f"{scale * v:.{digits}f} [{scale * lo:.{digits}f}, {scale * hi:.{digits}f}]"


def pval(v) -> str:
    if _missing(v):
        return "–"
    return f"{v:.2g}" if v >= 1e-4 else f"{v:.1e}"


def table(header: list[str], rows: list[list[str]]) -> str:
    if not rows:
        return "_(no data)_\n"
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"
