"""The step after reading a run for analysis: flag the games whose balances, rounds and outcome do
not add up under the run's rules (`harness.game.audit`), on the flat tables both of the reader's
paths produce, so the fast and the line-by-line path flag the same games. The analysis leaves the
flagged games out and counts them in the completeness table.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pydantic import ValidationError

from harness.game.audit import GameColumns, RoundColumns, audit
from harness.game.rules import GameRules


def run_rules(manifest: dict[str, Any]) -> GameRules | None:
    """The rules the run was played under (its manifest's config.game); None when unknown."""
    config = manifest.get("config")
    game = config.get("game") if isinstance(config, dict) else None
    if not isinstance(game, dict):
        return None
    try:
        return GameRules.model_validate({k: v for k, v in game.items() if k in GameRules.model_fields})
    except ValidationError:
        return None


def flag_inconsistent(games: pd.DataFrame, rounds: pd.DataFrame, rules: GameRules | None) -> list[str]:
    """Add the column `inconsistent` to `games` (frames of `harness.analysis.load.flatten`);
    returns `GAME_ID: what is wrong` for each flagged game."""
    why = audit(
        GameColumns(
            outcome=games["outcome"].astype(str).to_numpy(dtype=object),
            final_balance=games["final_balance"].to_numpy(), n_rounds=games["n_rounds"].to_numpy(),
            total_bet=games["total_bet"].to_numpy(),
        ),
        RoundColumns(
            game=rounds["game"].to_numpy(), round=rounds["round"].to_numpy(),
            forced=rounds["forced"].to_numpy(dtype=bool), balance_before=rounds["balance_before"].to_numpy(),
            balance_after=rounds["balance_after"].to_numpy(),
            decision=rounds["decision"].astype(str).to_numpy(dtype=object),
            bet=rounds["bet"].to_numpy(), win=rounds["win"].to_numpy().astype(np.int64),
        ),
        rules,
    )
    flagged = why != ""
    games["inconsistent"] = flagged
    ids = games["game_id"].to_numpy()
    return [f"{ids[i]}: {why[i]}" for i in np.nonzero(flagged)[0]]
