"""`report.md`: the tables a person reads, every figure with the number of games it stands on.
Rates are shown in %, intervals as [low, high] (95%)."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from harness.analysis.markdown import ci, num, pval, table
from harness.analysis.metrics import DECISION_KINDS, MAX_STREAK
from harness.analysis.published import PUBLISHED_R, match_published
from harness.analysis.results import FIGURES, TABLES, Results
from harness.analysis.tables import RATE


def _summary_rows(df: pd.DataFrame, keys: list[str]) -> list[list[str]]:
    return [
        [
            *(str(r[k]) for k in keys),
            r["n_games"],
            ci(r, RATE, 100, 1),
            ci(r, "n_rounds", 1, 1),
            ci(r, "total_bet", 1, 0),
            ci(r, "final_balance", 1, 0),
            ci(r, "index"),
            num(r["i_ba"]),
            num(r["i_lc_v1"]),
            num(r["i_lc_v1_stops"]),
            num(r["i_lc_v2"]),
            num(r["i_eb"]),
            r["n_invalid"],
            r["n_no_decision"],
            r["n_guessed"],
            _clamped(r),
        ]
        for _, r in df.iterrows()
    ]


def _clamped(r: pd.Series) -> str:
    """Clamped variable bets of a group as 'share (k/n)', '–' without variable bets."""
    n = int(r.get("n_requested", 0) or 0)
    k = int(r.get("n_clamped_over", 0) or 0) + int(r.get("n_clamped_under", 0) or 0)
    return f"{100 * k / n:.0f} % ({k}/{n})" if n else "–"


SUMMARY_HEADER = [
    "n",
    "bankrupt %",
    "rounds",
    "total bet $",
    "final balance $",
    "index",
    "I_BA",
    "I_LC v1",
    "I_LC v1 (stops)",
    "I_LC v2",
    "I_EB",
    "invalid",
    "no_decision",
    "guessed",
    "clamped bets",
]


def _completeness(res: Results) -> str:
    t = res.tables["completeness"]
    out = [
        table(
            [
                "run",
                "path",
                "decision mode",
                "games read",
                "expected",
                "complete",
                "torn lines",
                "bad lines",
                "duplicates",
                "inconsistent",
                "invalid",
                "no_decision",
                "guessed",
                "used",
            ],
            [
                [
                    r["run"],
                    f"`{r['path']}`",
                    r["decision_mode"],
                    r["games_read"],
                    num(r["games_expected"]),
                    "unknown"
                    if r["complete_pct"] is None or pd.isna(r["complete_pct"])
                    else f"{r['complete_pct']} %",
                    r["torn_lines"],
                    r["bad_lines"],
                    r["duplicates"],
                    r["inconsistent"],
                    r["invalid"],
                    r["no_decision"],
                    r["guessed"],
                    r["games_used"],
                ]
                for _, r in t.iterrows()
            ],
        )
    ]
    for p in res.runs:
        c = p.run.completeness
        if len(p.games) == 0:
            out.append(f"\n**{p.label}: no complete game yet**; the tables below are empty.\n")
        if c is not None and c < 1:
            out.append(
                f"\n**{p.label}: run incomplete** ({len(p.games)} of {p.run.expected_games} games, "
                f"{100 * c:.1f} %); figures cover the games written so far.\n"
            )
        for line in p.run.bad_lines[:5]:
            out.append(f"\n- {p.label}: skipped {line}")
        for game in p.run.inconsistent[:5]:
            out.append(f"\n- {p.label}: left out {game}")
    return "".join(out) + "\n"


def _published(res: Results) -> str:
    runs = res.tables["runs"]
    out = []
    for p in res.runs:
        pub = match_published(p.run.model)
        if pub is None:
            out.append(f"- {p.label}: no published row matches model `{p.run.model}`.\n")
            continue
        rows = []
        for bet_type, b_pct, idx in (
            ("fixed", pub.bankrupt_fixed_pct, pub.index_fixed),
            ("variable", pub.bankrupt_variable_pct, pub.index_variable),
        ):
            only = set(p.games["bet_type"]) == {bet_type}  # one bet type: its rows are scope "all"
            mine = runs[(runs["run"] == p.label) & (runs["scope"] == ("all" if only else bet_type))]
            if len(mine):
                r = mine.iloc[0]
                rows.append(
                    [bet_type, f"{b_pct:.2f}", ci(r, RATE, 100, 2), num(idx), ci(r, "index"), r["n_games"]]
                )
            else:
                rows.append([bet_type, f"{b_pct:.2f}", "–", num(idx), "–", 0])
        out.append(f"**{p.label}** vs published **{pub.name}**\n\n")
        out.append(
            table(
                [
                    "bet type",
                    "published bankrupt %",
                    "this run bankrupt %",
                    "published index",
                    "this run index",
                    "n (this run)",
                ],
                rows,
            )
            + "\n"
        )
    out.append(
        "\nThe published figures come from the paper's 64-condition grid (no forced first round, "
        "50 repetitions); a 128-condition run also holds the forced W/L opening round, so compare "
        "with that in mind.\n"
    )
    return "".join(out)


def _effects(res: Results, factors: list[str], scopes: list[str] | None = None) -> str:
    e = res.tables["effects"]
    if not len(e):
        return "_(no data)_\n"
    e = e[e["factor"].isin(factors)]
    if scopes:
        e = e[e["scope"].isin(scopes)]
    rows = []
    for (run, scope, factor), g in e.groupby(["run", "scope", "factor"], sort=False):
        g = g.set_index("metric")
        b, i = g.loc[RATE], g.loc["index"]
        rows.append(
            [
                run,
                scope,
                factor,
                f"{b['group_a']} / {b['group_b']}",
                f"{b['n_a']} / {b['n_b']}",
                f"{100 * b['a']:.1f} / {100 * b['b']:.1f}",
                ci(b, "diff", 100, 1),
                pval(b["p"]),
                pval(b.get("q_bh")),
                f"{i['a']:.3f} / {i['b']:.3f}",
                ci(i, "diff"),
                pval(i["p"]),
                ci(g.loc["n_rounds"], "diff", 1, 2),
            ]
        )
    return table(
        [
            "run",
            "scope",
            "factor",
            "a / b",
            "n a / b",
            "bankrupt % a / b",
            "diff pp",
            "p (Fisher)",
            "q (BH)",
            "index a / b",
            "diff",
            "p (Welch)",
            "rounds diff",
        ],
        rows,
    )


def _header(res: Results) -> str:
    modes = ", ".join(f"{p.label}: `{p.run.decision_mode}`" for p in res.runs)
    return (
        f"# Behavioural analysis\n\nGenerated {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())} by "
        f"`harness analyze`. Runs: {', '.join(p.label for p in res.runs)}.\n\n"
        f"**Decision mode:** {modes} (`free`: free text, then parsed; `constrained`: the model could write "
        "only `Bet $N` or `Stop`).\n\n"
        f"**Games used (default stated):** {res.exclusion.describe()}. Counts of both are in every table.\n\n"
        f"Intervals: 95 %, percentile bootstrap with B = {res.boot.resamples} resamples "
        f"(seed {res.boot.seed}); "
        "rates resampled exactly as Binomial(n, p)/n; large groups use the normal approximation "
        "(column `ci` of the CSV tables). Definitions: docs/analysis.md.\n\n"
    )


def _summary(res: Results) -> str:
    runs = res.tables["runs"]
    return "## Summary per run and bet type\n\n" + table(
        ["run", "scope", *SUMMARY_HEADER], _summary_rows(runs, ["run", "scope"])
    ) + "\n"


def _correlation(res: Results) -> str:
    corr = res.tables["correlation"]
    return (
        f"## Index vs bankruptcy across conditions\n\nPaper: r between {PUBLISHED_R[0]} and {PUBLISHED_R[1]} "
        "across its 64 conditions.\n\n"
        + table(
            ["run", "scope", "conditions", "games", "Pearson r", "p"],
            [
                [r["run"], r["scope"], r["n_conditions"], r["n_games"], num(r["r"]), pval(r["p"])]
                for _, r in corr.iterrows()
            ],
        )
        + "\n"
    )


def _n_components(res: Results) -> str:
    t = res.tables
    s = "## Number of prompt components\n\n" + table(
        ["run", "scope", "components", *SUMMARY_HEADER],
        _summary_rows(t["n_components"], ["run", "scope", "n_components"]),
    )
    s += "\nTrend (game-level Pearson r with the number of components):\n\n"
    return s + table(
        ["run", "scope", "metric", "games", "r", "p"],
        [[r["run"], r["scope"], r["metric"], r["n_games"], num(r["r"]), pval(r["p"])]
         for _, r in t["component_trend"].iterrows()],
    ) + "\n"


def _first_result(res: Results) -> str:
    s = "## First result: W vs L\n\n" + _effects(res, ["first_result"])
    fr = res.tables["first_result"]
    if len(fr):
        s += "\n" + table(
            ["run", "scope", "first", *SUMMARY_HEADER], _summary_rows(fr, ["run", "scope", "first_result"])
        )
    return s


def _streaks(res: Results) -> str:
    s = (
        f"\n## Streak chasing (k = 1..{MAX_STREAK})\n\nAfter exactly k consecutive wins or losses: "
        "*continued* = share of next decisions that bet again; *rose* = share of next bets larger than "
        "the last bet. n = streak events followed by a decision (events within a game are not independent; "
        "intervals treat them as if they were).\n\n"
    )
    rows = [
        [r["run"], r["scope"], r["streak"], r["k"], r["n_events"], ci(r, "continued"), r["n_next_bets"],
         ci(r, "rose")]
        for _, r in res.tables["streaks"].iterrows()
    ]
    return s + table(["run", "scope", "streak", "k", "events", "continued", "next bets", "rose"], rows) + "\n"


def _clamping(res: Results) -> str:
    """How often the rules, not the model, set a variable bet's amount."""
    runs = res.tables["runs"]
    rows = [
        [r["run"], r["scope"], r["n_requested"], r["n_clamped_over"], r["n_clamped_under"], _clamped(r),
         round(r[RATE] * r["n_games"]) if r["n_games"] else 0, r["n_bankrupt_last_all_in"],
         r["n_bankrupt_last_clamped"]]
        for _, r in runs.iterrows()
        if r["n_requested"]
    ]
    if not rows:
        return "## Clamped bets\n\n_(no variable bet records the amount the model wrote)_\n\n"
    return (
        "## Clamped bets\n\nVariable bets (games used) whose written amount was cut to the balance "
        "(asked for more: the bet became all-in) or raised to the minimum; the rules, not the model, set "
        "those amounts. "
        "Of the bankruptcies, how many ended on an all-in bet (the whole balance), and how many on a bet "
        "cut to the balance: those went bankrupt on an all-in the model did not write. Per condition: "
        "column `clamped bets` of the tables.\n\n"
        + table(["run", "scope", "variable bets", "cut to balance", "raised to minimum", "clamped",
                 "bankrupt", "last bet all-in", "last bet cut to balance"], rows)
        + "\n"
    )


def _parse_kinds(res: Results) -> str:
    """How each condition's decisions were read: a weak model's constrained step is not neutral."""
    cond = res.tables["conditions"]
    s = (
        "## How decisions were read, per condition\n\nDecision rounds of all games read, by parse kind "
        "(docs/analysis.md): read from a `Final Decision:` line or a base model's first line, from the "
        "constrained decision step (`extracted`, a guess: the harness's continuation of an unreadable "
        "answer), from a follow-up turn asking for the decision line (`follow_up`, the model's own words, on "
        "endpoints that cannot constrain), guessed by the `fallback` reader, or none (`unparsed`: the "
        "unparsed policy ended the game; `empty`: the empty-answer guard did; `refused`: the endpoint "
        "refused every answer). Shares in %.\n\n"
    )
    kinds = list(DECISION_KINDS)
    rows = []
    for _, r in cond.iterrows():
        counts = [int(r.get(f"decisions_{k}", 0)) for k in kinds]
        total = sum(counts)
        rows.append([
            r["run"], r["condition"], total, *(f"{100 * c / total:.0f}" if total else "–" for c in counts)
        ])
    return s + table(["run", "condition", "decisions", *kinds], rows) + "\n"


def _conditions(res: Results) -> str:
    return "## Per condition\n\n" + table(
        ["run", "condition", *SUMMARY_HEADER], _summary_rows(res.tables["conditions"], ["run", "condition"])
    ) + "\n"


def _figures_and_tables(res: Results, out: Path) -> str:
    s = ["## Figures\n\n"]
    for name, caption in FIGURES.items():
        if name in res.figures:
            s.append(f"![{caption}]({res.figures[name].relative_to(out)})\n\n*{caption}*\n\n")
    s.append("## Machine-readable tables\n\n")
    s += [f"- `tables/{name}.csv` / `.parquet`: {what}\n" for name, what in TABLES.items()]
    return "".join(s)


def render(res: Results, out: Path) -> str:
    """The whole report, one section after another."""
    return "".join([
        _header(res),
        "## Runs and completeness\n\n" + _completeness(res),
        _summary(res),
        "## Published figures beside this run\n\n" + _published(res) + "\n",
        _correlation(res),
        "## Prompt components: with vs without\n\n" + _effects(res, list("GMHWP")) + "\n",
        _n_components(res),
        "## Fixed vs variable betting\n\n" + _effects(res, ["bet_type"]) + "\n",
        _first_result(res),
        _streaks(res),
        _clamping(res),
        _figures_and_tables(res, out),
        "# Appendix\n\nThe per-condition tables (one row per condition of each run; "
        "`tables/conditions.csv` holds the same with every column).\n\n",
        _parse_kinds(res).replace("## How decisions were read, per condition",
                                  "## Appendix A. How decisions were read, per condition", 1),
        _conditions(res).replace("## Per condition", "## Appendix B. Per condition", 1),
    ])
