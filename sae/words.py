"""Feature words (docs/protocol.md §3.7, "Exp3"): what a feature says, read two ways.

1. Through the unembedding: the feature's decoder direction d_f = W_dec[f] / output_scale, scaled
   by the final norm's weight (RMSNorm's gain; Gemma's norms multiply by 1 + weight), times the
   unembedding W_U gives one logit change per token: the top tokens are what raising f promotes,
   the bottom ones what it suppresses. The norm's division by the residual's RMS is left out (it
   scales every token alike, so it changes no ranking).
2. In the games: every game's last decision prompt is read (`ResidualReader`, last token) and the
   feature's activation there splits the games at its median (high: above the median; low: the
   rest). A word's score is the share of high games whose last answer contains it minus the share
   of low games that do; the top positive words are "high" words, the top negative "low" words.
   With the activation, the bankrupt-minus-(voluntarily) stopped mean difference (`delta`) of the feature.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any, cast

import numpy as np
import pandas as pd
import torch

from harness.records import GameRecord
from harness.rundir.files import WORDS_CSV, WORDS_META, WORDS_REPORT, WORDS_TABLE
from sae.games import decision_rounds, group_of, split_groups

WORD = re.compile(r"[a-z]+(?:'[a-z]+)?|\$\d+")


def final_norm_gain(lm: torch.nn.Module) -> torch.Tensor | None:
    """The final norm's per-dimension gain (None when the model has no final norm with a weight)."""
    base = getattr(lm, "model", lm)
    norm = getattr(base, "norm", None) or getattr(base, "final_layernorm", None)
    weight = getattr(norm, "weight", None)
    if weight is None:
        return None
    weight = weight.detach().float()
    return (1.0 + weight) if type(norm).__name__.startswith("Gemma") else weight


def token_effects(directions: torch.Tensor, W_U: torch.Tensor, gain: torch.Tensor | None) -> torch.Tensor:
    """(k, d_model) feature directions -> (k, vocab) logit change per unit of activation."""
    d = directions.detach().float()
    if gain is not None:
        d = d * gain.to(d.device)
    return d @ W_U.detach().float().to(d.device).T


def top_tokens(effects: torch.Tensor, decode, k: int = 10) -> list[tuple[list, list]]:
    """Per row: ([(token, value)] top k promoted, [(token, value)] top k suppressed)."""
    k = min(k, effects.shape[1])
    up, down = effects.topk(k, dim=1), (-effects).topk(k, dim=1)
    out = []
    for i in range(effects.shape[0]):
        promoted = [(decode(int(t)), float(v)) for v, t in zip(up.values[i], up.indices[i], strict=True)]
        suppressed = [
            (decode(int(t)), -float(v)) for v, t in zip(down.values[i], down.indices[i], strict=True)
        ]
        out.append((promoted, suppressed))
    return out


def answer_words(texts: list[str], acts: np.ndarray, k: int = 10) -> dict:
    """Median split of `acts` over the answers `texts`: words more frequent in high vs low answers."""
    acts = np.asarray(acts, dtype=np.float64)
    median = float(np.median(acts)) if len(acts) else float("nan")
    high = acts > median
    words = [set(WORD.findall((t or "").lower())) for t in texts]
    n_high, n_low = int(high.sum()), int((~high).sum())
    result = {"median": median, "n_high": n_high, "n_low": n_low, "high_words": [], "low_words": []}
    if n_high == 0 or n_low == 0:  # no split: the feature is constant over these games
        return result
    in_high = Counter(w for ws, h in zip(words, high, strict=True) if h for w in ws)
    in_low = Counter(w for ws, h in zip(words, high, strict=True) if not h for w in ws)
    score = {w: in_high[w] / n_high - in_low[w] / n_low for w in set(in_high) | set(in_low)}
    ranked = sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))
    result["high_words"] = [(w, s) for w, s in ranked if s > 0][:k]
    result["low_words"] = [
        (w, s) for w, s in sorted(score.items(), key=lambda kv: (kv[1], kv[0])) if s < 0
    ][:k]
    return result


def _fmt(pairs: list[tuple[str, float]]) -> str:
    return ", ".join(f"{w!r} {v:+.2f}" for w, v in pairs)


def feature_words(
    lm: torch.nn.Module, decode, saes: dict, features: pd.DataFrame, acts: dict[int, np.ndarray],
    texts: list[str], groups: list[str], *, k_tokens: int = 10, k_words: int = 10,
) -> pd.DataFrame:
    """One row per feature: promoted / suppressed tokens, high / low answer words, delta.

    `acts[layer]` is (games, d_sae) at the games' last decision; `texts` and `groups` per game
    (bankrupt, stopped = a voluntary stop, or anything else, left out of the delta)."""
    # nn.Module.__getattr__ is typed Tensor | Module, so mypy cannot see the transformers method.
    W_U = cast(Any, lm).get_output_embeddings().weight.detach()
    gain = final_norm_gain(lm)
    groups_arr = np.asarray(groups)
    rows = []
    for layer, group in features.groupby("layer", sort=True):
        sae = saes[int(layer)]
        ids = group["feature"].astype(int).tolist()
        directions = torch.stack([sae.feature_direction(f) for f in ids])
        tokens = top_tokens(token_effects(directions, W_U, gain), decode, k_tokens)
        for f, (promoted, suppressed) in zip(ids, tokens, strict=True):
            a = acts[int(layer)][:, f]
            words = answer_words(texts, a, k_words)
            bankrupt, stopped = a[groups_arr == "bankrupt"], a[groups_arr == "stopped"]
            delta = (
                float(bankrupt.mean() - stopped.mean()) if len(bankrupt) and len(stopped) else float("nan")
            )
            src = group[group["feature"] == f].iloc[0]
            rows.append({
                "layer": int(layer), "feature": f, "direction": src.get("direction"),
                "classification": src.get("classification"), "delta": delta,
                "mean_bankrupt": float(bankrupt.mean()) if len(bankrupt) else float("nan"),
                "mean_stopped": float(stopped.mean()) if len(stopped) else float("nan"),
                "median": words["median"], "n_high": words["n_high"], "n_low": words["n_low"],
                "promotes": _fmt(promoted), "suppresses": _fmt(suppressed),
                "high_words": _fmt(words["high_words"]), "low_words": _fmt(words["low_words"]),
            })
    return pd.DataFrame(rows)


def extract_words(
    games: list[GameRecord], lm: torch.nn.Module, reader, saes: dict, features: pd.DataFrame, decode, *,
    k_tokens: int = 10, k_words: int = 10, progress: Callable[[int, int], None] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """The words pass: every game's last decision prompt through `reader` (last token, the layers of
    `features`), then `feature_words`. Games without a saved decision prompt are left out. Returns
    (table, meta: games used, per group, and the games dropped from the groups by rule)."""
    kept = [g for g in games if decision_rounds(g)]
    layers = sorted(int(x) for x in features["layer"].unique())
    prompts = [decision_rounds(g)[-1].prompt for g in kept]
    acts = {L: np.zeros((len(kept), saes[L].d_sae), dtype=np.float32) for L in layers}
    done = 0
    for idx, residuals in reader.last_token(prompts, layers):
        for L in layers:
            acts[L][idx] = saes[L].encode(residuals[L]).float().cpu().numpy()
        done += len(idx)
        if progress:
            progress(done, len(prompts))
    texts = [decision_rounds(g)[-1].response or "" for g in kept]
    groups = [group_of(g) or "other" for g in kept]  # the delta compares bankrupt vs voluntary stops
    table = feature_words(lm, decode, saes, features, acts, texts, groups, k_tokens=k_tokens, k_words=k_words)
    meta = {"games": len(kept), "n_bankrupt": groups.count("bankrupt"), "n_stopped": groups.count("stopped"),
            "games_dropped": split_groups(games)[1]}
    return table, meta


def write_words(table: pd.DataFrame, meta: dict, out) -> dict:
    """words.parquet / words.csv, words_meta.json and words_report.md."""
    import json

    out.mkdir(parents=True, exist_ok=True)
    paths = {"table": out / WORDS_TABLE, "csv": out / WORDS_CSV, "report": out / WORDS_REPORT,
             "meta": out / WORDS_META}
    table.to_parquet(paths["table"], index=False)
    table.to_csv(paths["csv"], index=False)
    paths["meta"].write_text(json.dumps(meta, indent=2))
    lines = ["# Feature words", "",
             f"{len(table)} features; {meta.get('games')} games' last decisions "
             f"({meta.get('n_bankrupt')} bankrupt, {meta.get('n_stopped')} voluntarily stopped). "
             "`delta` = mean activation in bankrupt games minus in voluntarily stopped games. "
             "Token values: logit change per unit of activation; "
             "word values: share of high-activation answers with the word minus share of low ones.", ""]
    for r in table.to_dict("records"):
        label = r.get("classification") or r.get("direction") or ""
        lines += [f"## Layer {r['layer']}, feature {r['feature']} {label}".rstrip(), "",
                  f"- delta {r['delta']:+.4g} "
                  f"(bankrupt {r['mean_bankrupt']:.4g}, stopped {r['mean_stopped']:.4g}); "
                  f"median split {r['n_high']} high / {r['n_low']} low",
                  f"- promotes: {r['promotes']}", f"- suppresses: {r['suppresses']}",
                  f"- words in high answers: {r['high_words'] or '(none)'}",
                  f"- words in low answers: {r['low_words'] or '(none)'}", ""]
    paths["report"].write_text("\n".join(lines))
    return paths
