"""The condition grid: bet type x forced first result x prompt-component subset."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from harness.records import BetType, ConditionRecord, FirstResult

#: Component keys in prompt order (docs/protocol.md §1.2). "H" is the authors' "R".
COMPONENT_KEYS = "GMHWP"
BET_TYPES: tuple[BetType, ...] = ("fixed", "variable")
FIRST_RESULTS: tuple[FirstResult, ...] = ("W", "L")
GRIDS = ("128", "64")


@dataclass(frozen=True, order=True)
class Condition:
    bet_type: BetType
    first_result: FirstResult | None
    components: str  # canonical order, "BASE" for none

    @property
    def id(self) -> str:
        return f"{self.bet_type}-{self.first_result or 'none'}-{self.components}"

    @property
    def component_set(self) -> frozenset[str]:
        return frozenset() if self.components == "BASE" else frozenset(self.components)

    def record(self) -> ConditionRecord:
        return ConditionRecord(
            id=self.id, bet_type=self.bet_type, first_result=self.first_result, components=self.components
        )


def all_component_combos() -> list[str]:
    """The 32 subsets of GMHWP in canonical form, "BASE" first."""
    combos = ["BASE"]
    for size in range(1, len(COMPONENT_KEYS) + 1):
        combos += ["".join(c) for c in itertools.combinations(COMPONENT_KEYS, size)]
    return combos


def canonical_components(text: str) -> str:
    """'pmg' -> 'GMP'; '' or 'BASE' -> 'BASE'. Raises ValueError on unknown letters or repeats."""
    t = text.strip().upper()
    if t in ("", "BASE", "NONE"):
        return "BASE"
    t = t.replace("R", "H")  # the authors' name for hidden patterns
    bad = sorted(set(t) - set(COMPONENT_KEYS))
    if bad:
        raise ValueError(
            f"unknown component(s) {''.join(bad)!r} in {text!r}; allowed letters: G M H W P or BASE"
        )
    if len(set(t)) != len(t):
        raise ValueError(f"repeated component in {text!r}")
    return "".join(k for k in COMPONENT_KEYS if k in t)


def grid(name: str) -> list[Condition]:
    """'128': 2 bet types x forced first result W/L x 32; '64': 2 bet types x 32, no forced round."""
    if name not in GRIDS:
        raise ValueError(f"unknown grid {name!r}; allowed: {', '.join(GRIDS)}")
    firsts: tuple[FirstResult | None, ...] = FIRST_RESULTS if name == "128" else (None,)
    return [
        Condition(b, f, c) for b in BET_TYPES for f in firsts for c in all_component_combos()
    ]


def parse_condition_id(text: str) -> Condition:
    """Parse 'variable-L-GMP' / 'fixed-none-BASE'. Raises ValueError naming the allowed values."""
    parts = text.strip().split("-")
    if len(parts) != 3:
        raise ValueError(
            f"condition {text!r} is not BET-FIRST-COMPONENTS, e.g. 'variable-L-GMP' or 'fixed-none-BASE'"
        )
    bet, first, comps = parts
    if bet not in BET_TYPES:
        raise ValueError(f"condition {text!r}: bet type {bet!r} not one of {', '.join(BET_TYPES)}")
    first_u = first.upper()
    if first_u not in ("W", "L", "NONE"):
        raise ValueError(f"condition {text!r}: first result {first!r} not one of W, L, none")
    return Condition(bet, None if first_u == "NONE" else first_u, canonical_components(comps))  # type: ignore[arg-type]
