"""Which patched features change behaviour: rates, Fisher's exact tests, BH-FDR, a class per feature.

Outcomes (docs/protocol.md §3.6): on the safe prompt, the stop rate; on the risky prompt, the rate of
bets of at least $20 (the amount played, after clamping to the balance). Both rates are over the
trials with a readable decision (parse kind `final_decision`, `first_line` or `extracted`): an
answer the parser could not read is neither a stop nor a bet, and counting it as "no hit" would
make a patch that breaks the answer format look like a change in betting. The unreadable share of
every condition is reported (`unparsed`).

Per feature, six tests of patched vs baseline (the baseline trials are shared by all features):
{safe-patch, risky-patch} x {safe prompt: stop rate, risky prompt: high-bet rate}, plus per patch
and prompt the unparsed share (`metric` = `unparsed`), each a two-sided Fisher's exact test;
q-values by Benjamini-Hochberg over all tests of all features of the pass together (one family).
A test is *significant* when q < alpha (0.05) and |change| >= min_effect (0.1).

Classification ("safe features raise stopping, risky features raise high bets"):
- `breaks_format` when a patch changes the unparsed share significantly: its rates are over
  fewer, selected answers, so it is never called safe or risky;
- safe evidence: a significant test where the safe patch raises the stop rate, or lowers the
  high-bet rate;
- risky evidence: a significant test where the risky patch raises the high-bet rate, or lowers
  the stop rate;
- `safe` / `risky` when only that evidence exists; with both, the side whose significant tests
  have the larger |change| (ties: the feature table's direction); `none` otherwise. Significant
  tests against that logic (e.g. the safe patch lowering stopping) are flagged in `opposite`.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from harness.errors import ConfigError
from harness.records import MODEL_DECISION_KINDS
from harness.rundir.files import PASS_REPORT, PATCH_FEATURES, PATCH_META, PATCH_TESTS
from sae.patching.prompts import HIGH_BET
from sae.patching.trials import PatchSettings
from sae.stats import benjamini_hochberg

METRIC = {"safe": "stop_rate", "risky": "high_bet_rate"}
TABLE_COLUMNS = ("layer", "feature", "mean_bankrupt", "mean_stopped")


def read_feature_table(path: Path) -> pd.DataFrame:
    """A features table (`harness sae features` output, Parquet or CSV) with the group means."""
    if not path.is_file():
        raise ConfigError(
            f"{path}: features table not found (run `harness sae features` first or pass --features)"
        )
    try:
        table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as e:
        raise ConfigError(f"{path}: cannot read the features table: {e}") from None
    missing = [c for c in TABLE_COLUMNS if c not in table.columns]
    if missing:
        raise ConfigError(f"{path}: features table lacks column(s) {', '.join(missing)}")
    return table


def parse_ids(text: str) -> list[tuple[int, int]]:
    """`25:1234,26:7` -> [(25, 1234), (26, 7)]."""
    try:
        return [tuple(int(x) for x in part.split(":")) for part in text.split(",") if part.strip()]  # type: ignore[misc]
    except ValueError:
        raise ConfigError(f"--ids: {text!r} is not a list like '25:1234,26:7'") from None


def select_features(
    table: pd.DataFrame, *, top: int | None = None, layers: list[int] | None = None,
    ids: list[tuple[int, int]] | None = None, include_all: bool = False,
) -> pd.DataFrame:
    """Explicit `ids`, else the significant features (all with `include_all`) of `layers`, the `top`
    per layer by |d|; ordered by layer, then |d| descending."""
    t = table.copy()
    if ids:
        key = pd.MultiIndex.from_tuples(ids, names=["layer", "feature"])
        t = t.set_index(["layer", "feature"])
        absent = [i for i in ids if i not in t.index]
        if absent:
            raise ConfigError(f"--ids: {absent[:5]} not in the features table")
        return t.loc[key].reset_index()
    if not include_all and "significant" in t.columns:
        t = t[t["significant"].astype(bool)]
    if layers is not None:
        t = t[t["layer"].isin(layers)]
    t = t.assign(_abs=t["d"].abs() if "d" in t.columns else 0.0).sort_values(
        ["layer", "_abs"], ascending=[True, False]
    )
    if top is not None:
        t = t.groupby("layer", sort=True).head(top)
    return t.drop(columns="_abs").reset_index(drop=True)


def patch_targets(chosen: pd.DataFrame) -> list[dict]:
    """Per feature the two patch targets: the stopped group's mean (safe), the bankrupt one's (risky)."""
    return [
        {"layer": int(r["layer"]), "feature": int(r["feature"]), "target_safe": float(r["mean_stopped"]),
         "target_risky": float(r["mean_bankrupt"]), "direction": r.get("direction")}
        for r in chosen.to_dict("records")
    ]


def hit(prompt: str, action: str | None, bet: int | None) -> bool:
    """The prompt's outcome for one trial: a stop (safe prompt) or a bet >= $20 (risky prompt)."""
    if prompt == "safe":
        return action == "stop"
    return action == "bet" and bet is not None and bet >= HIGH_BET


class Counts(NamedTuple):
    """A condition's trials: all, readable, hits among the readable, unreadable."""

    n: int
    readable: int
    hits: int
    unparsed: int

    @property
    def rate(self) -> float:
        return self.hits / self.readable if self.readable else float("nan")


def _counts(cond) -> Counts:
    readable = [t for t in cond.trials if t.kind in MODEL_DECISION_KINDS and t.action is not None]
    hits = sum(hit(cond.prompt, t.action, t.bet) for t in readable)
    return Counts(len(cond.trials), len(readable), hits, len(cond.trials) - len(readable))


def _fisher(a: int, b: int, a0: int, b0: int) -> float:
    from scipy.stats import fisher_exact

    if (a + b) == 0 or (a0 + b0) == 0:
        return 1.0  # nothing to compare: never significant
    return float(fisher_exact([[a, b], [a0, b0]]).pvalue)


def _test_rows(u, c, base: Counts) -> list[dict]:
    """The behaviour test and the format test of one patched condition."""
    now = _counts(c)
    common = {"layer": u.layer, "feature": u.feature, "direction": u.direction, "patch": c.patch,
              "prompt": c.prompt, "target": c.target, "n": now.n, "readable": now.readable,
              "base_n": base.n, "base_readable": base.readable,
              "unparsed": now.unparsed / now.n, "base_unparsed": base.unparsed / base.n}
    behaviour = {**common, "metric": METRIC[c.prompt], "hits": now.hits, "rate": now.rate,
                 "base_rate": base.rate, "change": now.rate - base.rate,
                 "p": _fisher(now.hits, now.readable - now.hits, base.hits, base.readable - base.hits)}
    fmt = {**common, "metric": "unparsed", "hits": now.unparsed, "rate": now.unparsed / now.n,
           "base_rate": base.unparsed / base.n, "change": now.unparsed / now.n - base.unparsed / base.n,
           "p": _fisher(now.unparsed, now.readable, base.unparsed, base.readable)}
    return [behaviour, fmt]


TEST_COLUMNS = ["layer", "feature", "direction", "patch", "prompt", "metric", "target", "n", "readable",
                "hits", "rate", "base_n", "base_readable", "base_rate", "change", "unparsed", "base_unparsed",
                "p"]


def compare_patches(lines, alpha: float = 0.05, min_effect: float = 0.1) -> pd.DataFrame:
    """One row per (feature, patch, prompt, metric): rates, change vs baseline, Fisher p, BH q over
    every row (behaviour and format tests in one family), significant."""
    base = {c.prompt: _counts(c) for u in lines if u.type == "baseline" for c in u.conditions}
    rows = [r for u in lines if u.type == "feature" for c in u.conditions
            for r in _test_rows(u, c, base[c.prompt])]
    t = pd.DataFrame(rows, columns=TEST_COLUMNS)
    t["q"] = benjamini_hochberg(t["p"].to_numpy())
    # a NaN change is never significant
    t["significant"] = (t["q"] < alpha) & (t["change"].abs() >= min_effect)
    return t


def _evidence(t: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    stop, high = t["metric"] == "stop_rate", t["metric"] == "high_bet_rate"
    up, down = t["change"] > 0, t["change"] < 0
    safe = (t["patch"] == "safe") & ((stop & up) | (high & down))
    risky = (t["patch"] == "risky") & ((high & up) | (stop & down))
    return safe & t["significant"], risky & t["significant"]


def _label(safe: float, risky: float, breaks: bool, direction) -> str:
    if breaks:
        return "breaks_format"
    if safe == 0 and risky == 0:
        return "none"
    if safe != risky:
        return "safe" if safe > risky else "risky"
    return direction if direction in ("safe", "risky") else "safe"


def classify(tests: pd.DataFrame) -> pd.DataFrame:
    """One row per feature: every test's rate, change and q, evidence, and `classification`."""
    t = tests.copy()
    t["safe_ev"], t["risky_ev"] = _evidence(t)
    t["format_ev"] = t["significant"] & (t["metric"] == "unparsed")
    t["opposite_ev"] = t["significant"] & ~t["safe_ev"] & ~t["risky_ev"] & ~t["format_ev"]
    t["abs_change"] = t["change"].abs()
    out = []
    for (layer, feature), g in t.groupby(["layer", "feature"], sort=True):
        row = {"layer": layer, "feature": feature, "direction": g["direction"].iloc[0]}
        for _, r in g.iterrows():
            key = f"{r['patch']}_patch_{r['prompt']}_{r['metric']}" if r["metric"] == "unparsed" else \
                f"{r['patch']}_patch_{r['metric']}"
            row[key], row[f"{key}_change"], row[f"{key}_q"] = r["rate"], r["change"], r["q"]
        behaviour = g[g["metric"] != "unparsed"]
        s = float(np.nan_to_num(g.loc[g["safe_ev"], "abs_change"].max()))
        k = float(np.nan_to_num(g.loc[g["risky_ev"], "abs_change"].max()))
        breaks = bool(g["format_ev"].any())
        row.update(safe_evidence=bool(g["safe_ev"].any()), risky_evidence=bool(g["risky_ev"].any()),
                   breaks_format=breaks, opposite=bool(g["opposite_ev"].any()),
                   max_abs_change=float(np.nan_to_num(behaviour["abs_change"].max())),
                   min_q=float(behaviour["q"].min()), classification=_label(s, k, breaks, row["direction"]))
        out.append(row)
    return pd.DataFrame(out)


def baseline_rates(lines) -> dict[str, dict]:
    out = {}
    for u in lines:
        if u.type == "baseline":
            for c in u.conditions:
                k = _counts(c)
                out[c.prompt] = {"metric": METRIC[c.prompt], "n": k.n, "readable": k.readable, "rate": k.rate,
                                 "unparsed": k.unparsed / k.n}
    return out


def md_table(df: pd.DataFrame) -> str:
    """A DataFrame as a pipe table: q/p columns as p-values, other floats with 3 digits."""
    from harness.analysis.markdown import num, pval, table

    cells = [[pval(v) if c in ("p", "q", "min_q") or c.endswith("_q") else num(v) for c, v in row.items()]
             for row in df.to_dict("records")]
    return table([str(c) for c in df.columns], cells)


CLASSES = ["safe", "risky", "breaks_format", "none"]


def _unparsed_lines(tests: pd.DataFrame) -> list[str]:
    """Mean unparsed share per patched condition, over the pass's features."""
    fmt = tests[tests["metric"] == "unparsed"]
    if fmt.empty:
        return []
    mean = fmt.groupby(["patch", "prompt"])["rate"].mean()
    return [f"- {patch} patch, {prompt} prompt: {share:.0%} unparsed on average over features"
            for (patch, prompt), share in mean.items()]


def write_report(
    features: pd.DataFrame, tests: pd.DataFrame, lines, meta: dict, out: Path, top: int = 20
) -> Path:
    """report.md: settings, baseline rates, counts per layer, the top causal features."""
    base = baseline_rates(lines)
    parts = ["# Activation patching", "",
             f"Model {meta.get('model')}, {meta.get('trials')} trials per condition "
             f"at T {meta.get('temperature')}, "
             f"max {meta.get('max_new_tokens')} new tokens; {len(features)} features. Significant: "
             f"BH q < {meta.get('alpha')} over all {len(tests)} tests (behaviour and unparsed share) and "
             f"|change| >= {meta.get('min_effect')}. Rates are over readable answers; a feature whose patch "
             "changes the unparsed share significantly is `breaks_format`.", "",
             "## Baseline (unpatched)", ""]
    parts += [f"- {p} prompt: {b['metric']} {b['rate']:.2f} ({b['readable']} of {b['n']} trials readable, "
              f"{b['unparsed']:.0%} unparsed)" for p, b in base.items()]
    parts += _unparsed_lines(tests)
    counts = (features.groupby("layer")["classification"].value_counts().unstack(fill_value=0)
              .reindex(columns=CLASSES, fill_value=0).reset_index()) if len(features) else pd.DataFrame()
    parts += ["", "## Features per layer", "", md_table(counts) if len(counts) else "(no features)", "",
              f"## Top {top} causal features (largest change)", ""]
    causal = (features[features["classification"].isin(["safe", "risky"])]
              .sort_values("max_abs_change", ascending=False).head(top))
    cols = [c for c in features.columns if (c.endswith("_change") and "unparsed" not in c)
            or c in ("layer", "feature", "direction", "classification", "min_q")]
    parts.append(md_table(causal[cols]) if len(causal) else "(none)")
    path = out / PASS_REPORT
    path.write_text("\n".join(parts) + "\n")
    return path


def write_results(
    lines, features: list[dict], settings: PatchSettings, meta: dict, out: Path, *, alpha: float,
    min_effect: float, neuronpedia: dict[int, str | None] | None = None,
) -> pd.DataFrame:
    """The end of a pass: the settings with their warnings (patch_meta.json), the tests and the class
    of every feature in `features` (patch_tests, patch_features: .parquet and .csv) and report.md.
    Returns the classes."""
    (out / PATCH_META).write_text(settings.model_dump_json(indent=2))
    wanted = {(f["layer"], f["feature"]) for f in features}
    lines = [u for u in lines if u.type == "baseline" or (u.layer, u.feature) in wanted]
    from sae.releases import with_neuronpedia

    tests = compare_patches(lines, alpha, min_effect)
    table = classify(tests)
    if neuronpedia is not None:  # each feature's page, where its SAE's release is on Neuronpedia
        tests, table = with_neuronpedia(tests, neuronpedia), with_neuronpedia(table, neuronpedia)
    for name, frame in ((PATCH_TESTS, tests), (PATCH_FEATURES, table)):
        frame.to_parquet(out / name, index=False)
        frame.to_csv((out / name).with_suffix(".csv"), index=False)
    write_report(table, tests, lines, meta, out)
    return table
