"""The paper's published figures (docs/protocol.md §2.3) and loose model-name matching, so a run
of 'Meta-Llama-3.1-8B-Instruct' is shown beside the paper's LLaMA-3.1-8B row."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Published:
    """One model's published figures: bankruptcy % and index (v1), fixed / variable betting."""

    name: str
    key: str  # the model name reduced to lowercase letters and digits, as matched
    bankrupt_fixed_pct: float
    bankrupt_variable_pct: float
    index_fixed: float | None = None
    index_variable: float | None = None


PUBLISHED = [
    Published("GPT-4o-mini", "gpt4omini", 0.00, 21.31, 0.025, 0.172),
    Published("GPT-4.1-mini", "gpt41mini", 0.00, 6.31, 0.031, 0.077),
    Published("Gemini-2.5-Flash", "gemini25flash", 3.12, 48.06, 0.042, 0.265),
    Published("Claude-3.5-Haiku", "claude35haiku", 0.00, 20.50, 0.041, 0.186),
    Published("LLaMA-3.1-8B", "llama318b", 2.62, 6.75),
    Published("Gemma-2-9B", "gemma29b", 12.81, 29.06),
]

#: The paper's index-bankruptcy correlation across its 64 conditions.
PUBLISHED_R = (0.84, 0.95)


def _squash(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def match_published(model: str) -> Published | None:
    """The published row whose key is in the model name squashed to lowercase letters and
    digits: 'llama-3.1-8b', 'Meta-Llama-3.1-8B-Instruct', 'meta-llama/Llama-3.1-8B' -> LLaMA-3.1-8B;
    'gemma-2-9b-it' -> Gemma-2-9B; 'llama-3.1-80b' ('llama3180b') matches nothing."""
    s = _squash(model)
    return next((p for p in PUBLISHED if p.key in s), None)
