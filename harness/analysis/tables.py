"""Per-group summaries: bankruptcy rate and metric means with 95% intervals, and the counts
each figure stands on (games used, games read, invalid games, games with a guessed parse)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.load import RunData
from harness.analysis.metrics import DECISION_KINDS, condition_columns, game_metrics, streak_events
from harness.analysis.stats import Boot, interval, mean_draws, rate_draws, use_exact
from harness.game.conditions import all_component_combos

#: Means reported for every group, in report order.
MEANS = [
    "n_rounds", "total_bet", "final_balance", "index", "i_ba", "i_lc_v1", "i_lc_v1_stops", "i_lc_v2", "i_eb",
]
RATE = "bankrupt_rate"
#: Variable bets with a written amount, and those cut to the balance or raised to the minimum.
CLAMP_COUNTS = ["n_requested", "n_clamped_over", "n_clamped_under"]
CLAMPED = "clamped_share"
#: Outcomes decided by a policy or a guard, not by the game: no behavioural outcome.
NO_OUTCOME = ("invalid", "no_decision")


@dataclass(frozen=True)
class Exclusion:
    """Which games the figures leave out (they are always counted)."""

    invalid: bool = True
    guessed: bool = False

    def describe(self) -> str:
        inv = "excluded" if self.invalid else "included"
        gue = "excluded" if self.guessed else "included"
        return (
            f"games that ended `invalid` or `no_decision` are {inv} (flag `--include-invalid` / default "
            f"excluded: a guard or the unparsed policy ended them, so they have no behavioural outcome); "
            f"games with a guessed parse (a round read by `fallback`, decided by the constrained step "
            f"(`extracted`) or left `unparsed`) are {gue} "
            f"(flag `--exclude-guessed`); games whose balances, rounds and outcome do not add up under "
            f"the rules are excluded (column `inconsistent`)"
        )


@dataclass
class PreparedRun:
    """A run's games with their metrics, condition columns and an `included` flag, plus the
    streak events of the included games."""

    run: RunData
    games: pd.DataFrame
    streaks: pd.DataFrame

    @property
    def label(self) -> str:
        return self.run.label


def prepare(run: RunData, exclusion: Exclusion) -> PreparedRun:
    metrics = game_metrics(run.rounds, len(run.games), (run.games["bet_type"] == "variable").to_numpy())
    games = pd.concat([condition_columns(run.games), metrics], axis=1)
    invalid = games["outcome"].isin(NO_OUTCOME).to_numpy()
    included = ~games["inconsistent"].to_numpy(dtype=bool)
    if exclusion.invalid:
        included &= ~invalid
    if exclusion.guessed:
        included &= ~games["guessed"].to_numpy()
    games["included"] = included
    events = streak_events(run.rounds)
    events = events[included[events["game"].to_numpy()]] if len(events) else events
    events = events.assign(bet_type=games["bet_type"].to_numpy()[events["game"].to_numpy()])
    return PreparedRun(run, games, events.reset_index(drop=True))


def scopes(frame: pd.DataFrame, column: str = "bet_type") -> Iterator[tuple[str, pd.DataFrame]]:
    """('all', frame) then one (bet type, part) per bet type when there are several."""
    yield "all", frame
    values = sorted(frame[column].unique())
    if len(values) > 1:
        for value in values:
            yield str(value), frame[frame[column] == value]


def summarise(frame: pd.DataFrame, by: list[str], boot: Boot, salt: int = 0) -> pd.DataFrame:
    """One row per group of `by` (all rows when `by` is empty)."""
    inc = frame["included"].to_numpy()
    values = frame[MEANS].to_numpy(dtype=float)
    bankrupt = frame["bankrupt"].to_numpy()
    invalid = (frame["outcome"] == "invalid").to_numpy()
    no_decision = (frame["outcome"] == "no_decision").to_numpy()
    guessed = frame["guessed"].to_numpy()
    kinds = frame[[f"n_{k}" for k in DECISION_KINDS]].to_numpy()
    clamp = frame[CLAMP_COUNTS].to_numpy()
    bankrupt_clamped = (frame["last_bet_clamped"].to_numpy(dtype=bool) & (bankrupt == 1)).astype(int)
    bankrupt_all_in = (frame["last_bet_all_in"].to_numpy(dtype=bool) & (bankrupt == 1)).astype(int)
    total = int(inc.sum())
    groups = frame.groupby(by, sort=True, observed=True).indices if by else {(): np.arange(len(frame))}
    rows = []
    for i, (key, pos) in enumerate(groups.items()):
        use = pos[inc[pos]]
        n = len(use)
        exact = use_exact(n, total)
        rng = boot.rng(salt, i)
        draws = mean_draws(values[use], boot, rng, exact)
        lo, hi = interval(draws)
        k = int(bankrupt[use].sum())
        r_lo, r_hi = interval(rate_draws(np.array([k]), np.array([n]), boot, rng))
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(by, key, strict=True))
        row.update(
            n_games=n,
            n_read=len(pos),
            n_invalid=int(invalid[pos].sum()),
            n_no_decision=int(no_decision[pos].sum()),
            n_guessed=int(guessed[pos].sum()),
            **{f"decisions_{k}": int(v) for k, v in zip(DECISION_KINDS, kinds[pos].sum(axis=0), strict=True)},
            ci=f"bootstrap B={boot.resamples}" if exact else "normal approx.",
            **{name: int(v) for name, v in zip(CLAMP_COUNTS, clamp[use].sum(axis=0), strict=True)},
            n_bankrupt_last_all_in=int(bankrupt_all_in[use].sum()),
            n_bankrupt_last_clamped=int(bankrupt_clamped[use].sum()),
        )
        clamped = row["n_clamped_over"] + row["n_clamped_under"]
        row[CLAMPED] = clamped / row["n_requested"] if row["n_requested"] else np.nan
        row[RATE] = k / n if n else np.nan
        row[f"{RATE}_lo"], row[f"{RATE}_hi"] = r_lo[0], r_hi[0]
        means = values[use].mean(axis=0) if n else np.full(len(MEANS), np.nan)
        for j, name in enumerate(MEANS):
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = means[j], lo[j], hi[j]
        rows.append(row)
    return pd.DataFrame(rows)


def with_run(df: pd.DataFrame, label: str, **extra: str) -> pd.DataFrame:
    """Put the run label (and e.g. the scope) in front."""
    front = {"run": label, **extra}
    for i, (k, v) in enumerate(front.items()):
        df.insert(i, k, v)
    return df


def run_tables(prep: PreparedRun, boot: Boot, run_no: int) -> dict[str, pd.DataFrame]:
    """The summary tables of one run: by scope, by condition, by first result, by component count."""
    g, label = prep.games, prep.label
    salt = 1000 * run_no
    parts: dict[str, list[pd.DataFrame]] = {"runs": [], "first_result": [], "n_components": []}
    for s, (scope, part) in enumerate(scopes(g)):
        parts["runs"].append(with_run(summarise(part, [], boot, salt + 10 * s), label, scope=scope))
        if (part["first_result"] != "none").any():
            fr = summarise(part, ["first_result"], boot, salt + 10 * s + 1)
            parts["first_result"].append(with_run(fr, label, scope=scope))
        nc = summarise(part, ["n_components"], boot, salt + 10 * s + 2)
        parts["n_components"].append(with_run(nc, label, scope=scope))
    cond = summarise(g, ["condition", "bet_type", "first_result", "components"], boot, salt + 99)
    if len(cond):  # grid order: bet type, first result, then BASE, G, M, ..., GMHWP
        combos = {c: i for i, c in enumerate(all_component_combos())}
        order = cond.apply(
            lambda r: (str(r["bet_type"]), str(r["first_result"]), combos.get(str(r["components"]), 99)),
            axis=1,
        )
        cond = cond.iloc[sorted(range(len(cond)), key=order.iloc.__getitem__)].reset_index(drop=True)
    out = {k: pd.concat(v, ignore_index=True) for k, v in parts.items() if v}
    out["conditions"] = with_run(cond, label)
    return out


def completeness_row(prep: PreparedRun) -> dict:
    """How much of the run is there and what was skipped or excluded."""
    r, g = prep.run, prep.games
    return {
        "run": r.label,
        "model": r.model,
        "path": str(r.path),
        "games_read": len(g),
        "games_expected": r.expected_games,
        "complete_pct": None if r.completeness is None else round(100 * r.completeness, 1),
        "torn_lines": r.torn_lines,
        "bad_lines": len(r.bad_lines),
        "duplicates": r.duplicates,
        "inconsistent": len(r.inconsistent),
        "decision_mode": r.decision_mode,
        "invalid": int((g["outcome"] == "invalid").sum()),
        "no_decision": int((g["outcome"] == "no_decision").sum()),
        "guessed": int(g["guessed"].sum()),
        "games_used": int(g["included"].sum()),
    }


#: The per-game columns each row of the rounds table repeats.
_GAME_KEYS = ["game_id", "condition", "bet_type", "first_result", "components", "repetition", "outcome"]


def round_table(prep: PreparedRun) -> pd.DataFrame:
    """One row per round of every game: the game's keys, the round as recorded, what it cost
    (re-asks, transport retries, tokens, latency), whether the round before was a loss (the bet
    after a loss), and whether the game is used by the figures (`included`)."""
    rounds = prep.run.rounds
    if not len(rounds):
        return pd.DataFrame()
    game = rounds["game"].to_numpy()
    keys = prep.games[_GAME_KEYS].iloc[game].reset_index(drop=True)
    out = pd.concat([keys, rounds.drop(columns=["game"]).reset_index(drop=True)], axis=1)
    win = rounds["win"].to_numpy()
    same_game = np.r_[False, game[1:] == game[:-1]]
    out["after_loss"] = same_game & np.r_[False, win[:-1] == 0]
    out["included"] = prep.games["included"].to_numpy()[game]
    out.insert(0, "model", prep.run.games["model"].astype(str).to_numpy()[game])
    out.insert(0, "run", prep.label)
    return out
