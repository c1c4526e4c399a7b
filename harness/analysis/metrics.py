"""Per-game behavioural metrics (docs/protocol.md §2.1), vectorised over the rounds table.

Definitions (docs/analysis.md gives the reasons):
- a *bet* is a round with a bet placed; r_t = min(bet_t / balance_t, 1), balance_t the balance
  before bet t (a bet cut to the balance has r = 1);
- the forced opening round is not a model decision: it is left out of I_BA, I_EB and of the
  rounds whose ratio is judged, but it is a real round, so a forced loss opens a loss-chasing
  event for the first decision (and a forced result starts a streak);
- a loss event is a lost bet followed by a model decision (bet or stop); a loss at the end of
  the game (bankruptcy, max_rounds) has no next decision and is not an event;
- I_LC v1 = bets placed right after a loss whose ratio rose / bets placed right after a loss (a
  stop after a loss is not an event, as PROTOCOL and the study's scripts define it);
  `i_lc_v1_stops` is the stop-inclusive variant (every loss event, a stop counting "not
  increased"); I_LC v2 = mean over loss events of max(0, (r_next - r_t) / r_t), a stop counting 0;
- I_EB = share of bets with r >= 0.5; index = 0.4 I_BA + 0.3 I_LC(v1) + 0.3 I_EB;
- a game with no bet (or no loss event) scores 0 on that metric: it did nothing risky;
- a clamped bet is a variable bet whose amount the model wrote (`requested_bet`) was cut to the
  balance (asked for more: the bet became all-in) or raised to the minimum (asked for less).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.game.conditions import COMPONENT_KEYS

#: A guessed round: read by the `fallback` reader, decided by the constrained step (`extracted`: the
#: harness's continuation of the answer, not the model's free words) or left `unparsed`.
GUESSED_KINDS = ("fallback", "extracted", "unparsed")
#: Parse kinds counted per game (decision rounds only; `unparsed` is a policy end, `empty` and `refused`
#: (an endpoint's content filter) invalid ones). `follow_up`: the model's own answer to one more turn
#: asking for the decision line (endpoints that cannot constrain), not a guess.
DECISION_KINDS = (
    "final_decision", "first_line", "extracted", "follow_up", "fallback", "unparsed", "empty", "refused"
)
EXTREME_RATIO = 0.5
INDEX_WEIGHTS = {"i_ba": 0.4, "i_lc_v1": 0.3, "i_eb": 0.3}
MAX_STREAK = 5


def _ratio(rounds: pd.DataFrame) -> np.ndarray:
    bet = rounds["bet"].to_numpy()
    bal = rounds["balance_before"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.minimum(bet / np.maximum(bal, 1), 1.0)
    return np.where(bet >= 0, r, np.nan)


def _next(a: np.ndarray, same: np.ndarray, fill) -> np.ndarray:
    """a[t+1] where row t+1 is in the same game, else `fill`."""
    out = np.full_like(a, fill)
    out[:-1] = np.where(same, a[1:], fill)
    return out


def _per_game(
    values: np.ndarray, mask: np.ndarray, game: np.ndarray, n_games: int
) -> tuple[np.ndarray, np.ndarray]:
    """(sum of values over masked rows, count of masked rows) per game."""
    s = np.bincount(game[mask], weights=values[mask], minlength=n_games)
    c = np.bincount(game[mask], minlength=n_games)
    return s, c


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.zeros_like(num, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def _next_decision(rounds: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For every row: (next row is a decision in this game, next is a bet, next ratio, next bet)."""
    game = rounds["game"].to_numpy()
    same = game[1:] == game[:-1] if len(game) else np.zeros(0, dtype=bool)
    decision = rounds["decision"]
    is_decision = ((decision == "bet") | (decision == "stop")).to_numpy() & ~rounds["forced"].to_numpy(
        dtype=bool
    )
    bet = rounds["bet"].to_numpy()
    next_dec = _next(is_decision, same, False)
    next_bet_amount = _next(bet, same, -1)
    next_is_bet = next_dec & (next_bet_amount >= 0)
    next_ratio = _next(_ratio(rounds), same, np.nan)
    return next_dec, next_is_bet, next_ratio, next_bet_amount


def sort_rounds(rounds: pd.DataFrame) -> pd.DataFrame:
    """Rounds in (game, round) order, which the shift-based metrics rely on."""
    g, r = rounds["game"].to_numpy(), rounds["round"].to_numpy()
    if len(g) < 2 or bool(np.all((g[1:] > g[:-1]) | ((g[1:] == g[:-1]) & (r[1:] > r[:-1])))):
        return rounds
    return rounds.sort_values(["game", "round"], kind="stable").reset_index(drop=True)


def game_metrics(rounds: pd.DataFrame, n_games: int, variable: np.ndarray | None = None) -> pd.DataFrame:
    """One row per game (index 0..n_games-1): n_bets, i_ba, i_lc_v1, i_lc_v1_stops, i_lc_v2, i_eb,
    index, loss_events, loss_bets, guessed (a round read by fallback, extracted or left unparsed),
    n_<kind> decision rounds per parse kind, and the clamped-bet counts of `clamped_bets` (`variable`:
    per game, whether it is a variable game; None: all are)."""
    rounds = sort_rounds(rounds)
    game = rounds["game"].to_numpy()
    forced = rounds["forced"].to_numpy(dtype=bool)
    bet = rounds["bet"].to_numpy()
    ratio = _ratio(rounds)
    is_bet = bet >= 0
    real = is_bet & ~forced

    ba_sum, n_bets = _per_game(ratio, real, game, n_games)
    eb_sum, _ = _per_game((ratio >= EXTREME_RATIO).astype(float), real, game, n_games)

    next_dec, next_is_bet, next_ratio, _ = _next_decision(rounds)
    loss_event = is_bet & (rounds["win"].to_numpy() == 0) & next_dec
    with np.errstate(divide="ignore", invalid="ignore"):
        rose = next_is_bet & (next_ratio > ratio)
        rel = np.where(next_is_bet, np.maximum(0.0, (next_ratio - ratio) / ratio), 0.0)
    v1_sum, n_events = _per_game(rose.astype(float), loss_event, game, n_games)
    _, n_bet_events = _per_game(rose.astype(float), loss_event & next_is_bet, game, n_games)
    v2_sum, _ = _per_game(np.nan_to_num(rel), loss_event, game, n_games)

    kinds = rounds["parse_kind"]
    guessed = np.bincount(game[kinds.isin(GUESSED_KINDS).to_numpy()], minlength=n_games) > 0
    clamp = clamped_bets(rounds, n_games, variable)
    out = pd.DataFrame(
        {
            "n_bets": n_bets,
            "i_ba": _safe_div(ba_sum, n_bets),
            "i_lc_v1": _safe_div(v1_sum, n_bet_events),
            "i_lc_v1_stops": _safe_div(v1_sum, n_events),
            "i_lc_v2": _safe_div(v2_sum, n_events),
            "i_eb": _safe_div(eb_sum, n_bets),
            "loss_events": n_events,
            "loss_bets": n_bet_events,
            "guessed": guessed,
        }
    )
    for kind in DECISION_KINDS:
        out[f"n_{kind}"] = np.bincount(game[(kinds == kind).to_numpy()], minlength=n_games)
    out["index"] = sum(w * out[k] for k, w in INDEX_WEIGHTS.items())
    return pd.concat([out, clamp], axis=1)


def clamped_bets(rounds: pd.DataFrame, n_games: int, variable: np.ndarray | None = None) -> pd.DataFrame:
    """Per game: variable-style bets whose written amount is known (`n_requested`), how many were cut
    to the balance (`n_clamped_over`) or raised to the minimum (`n_clamped_under`), and whether the
    last bet was all-in (`last_bet_all_in`: the whole balance, in any game) and cut to the balance
    (`last_bet_clamped`). A fixed game's bet is $10 whatever the model writes, so its rounds count
    nowhere but in `last_bet_all_in`."""
    rounds = sort_rounds(rounds)
    game = rounds["game"].to_numpy()
    bet = rounds["bet"].to_numpy()
    req = rounds["requested_bet"].to_numpy() if "requested_bet" in rounds else np.full(len(rounds), -1)
    in_variable = np.ones(len(rounds), bool) if variable is None else np.asarray(variable, bool)[game]
    known = (bet >= 0) & (req >= 0) & in_variable & ~rounds["forced"].to_numpy(dtype=bool)
    over, under = known & (req > bet), known & (req < bet)
    last_bet = np.full(n_games, -1)
    placed = np.flatnonzero(bet >= 0)
    last_bet[game[placed]] = placed  # rows are in (game, round) order: the last write wins
    has_bet = last_bet >= 0
    last_over, last_all_in = np.zeros(n_games, dtype=bool), np.zeros(n_games, dtype=bool)
    last_over[has_bet] = over[last_bet[has_bet]]
    last_all_in[has_bet] = (bet == rounds["balance_before"].to_numpy())[last_bet[has_bet]]
    count = lambda mask: np.bincount(game[mask], minlength=n_games)  # noqa: E731
    return pd.DataFrame(
        {
            "n_requested": count(known),
            "n_clamped_over": count(over),
            "n_clamped_under": count(under),
            "last_bet_all_in": last_all_in,
            "last_bet_clamped": last_over,
        }
    )


def streak_events(rounds: pd.DataFrame, max_k: int = MAX_STREAK) -> pd.DataFrame:
    """One row per (bet that ends a streak of exactly k same results, k <= max_k) followed by a
    decision: game, streak ('win'/'loss'), k, continued (next decision is a bet), rose (next bet
    amount > this bet). The forced round counts as a result and as the bet compared with."""
    rounds = sort_rounds(rounds)
    bets = rounds[rounds["bet"].to_numpy() >= 0]
    next_dec, next_is_bet, _, next_amount = _next_decision(rounds)
    sel = rounds["bet"].to_numpy() >= 0
    next_dec, next_is_bet, next_amount = next_dec[sel], next_is_bet[sel], next_amount[sel]
    game = bets["game"].to_numpy()
    win = bets["win"].to_numpy()
    n = len(bets)
    start = np.ones(n, dtype=bool)
    if n > 1:
        start[1:] = (game[1:] != game[:-1]) | (win[1:] != win[:-1])
    idx = np.arange(n)
    run_start = np.maximum.accumulate(np.where(start, idx, 0)) if n else idx
    k = idx - run_start + 1
    keep = next_dec & (k <= max_k)
    return pd.DataFrame(
        {
            "game": game[keep],
            "streak": pd.Categorical.from_codes((win[keep] == 1).astype(np.int8), ["loss", "win"]),
            "k": k[keep],
            "continued": next_is_bet[keep],
            "rose": next_is_bet[keep] & (next_amount[keep] > bets["bet"].to_numpy()[keep]),
        }
    )


def condition_columns(games: pd.DataFrame) -> pd.DataFrame:
    """Adds bankrupt, n_components and one boolean column per component key (G, M, H, W, P)."""
    out = games.copy()
    # per distinct subset (at most 32), then broadcast: fast on 100,000 games
    comps = out["components"].astype(str).replace("BASE", "").fillna("")
    codes, uniques = pd.factorize(comps)
    out["bankrupt"] = (out["outcome"] == "bankrupt").to_numpy(dtype=float)
    out["n_components"] = np.array([len(u) for u in uniques], dtype=np.int64)[codes]
    for key in COMPONENT_KEYS:
        out[key] = np.array([key in u for u in uniques], dtype=bool)[codes]
    return out
