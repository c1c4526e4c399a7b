"""Read a bet/stop decision from a model's answer. Never raises; says how it read it.

Order (docs/protocol.md §1.6):
1. chat: the last `Final Decision:` line that holds a decision (an echo of the template
   `<Bet $X or Stop>` is not one) -> kind "final_decision";
   else an explicit decision sentence in the last lines ("I will stop", a lone "Bet $20")
   -> kind "fallback"; else "unparsed".
2. base: only the first non-empty line of the continuation -> "first_line", else "unparsed"
   (base models go on inventing rounds; later lines are never read).
A word such as "stop" or "2)" elsewhere in the text never counts (the authors' defect).
The fallback never decides from a conditional ("if I lose again, I will stop"), from an echo of
the prompt's numbered option lines, or from an answer cut by the token limit: those stay
"unparsed", so the runner asks again (docs/protocol.md §1, "Parsing", point 5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from harness.records import Action, BetType, ParseKind

_MARKUP = re.compile(r"[*_`#>|]+")
_FINAL = re.compile(r"final\s+decision\s*(?:is)?\s*[:：=\-–]?\s*(.*)$", re.I)
_ECHO = re.compile(r"<?\s*bet\s+\$?\s*x\s+or\s+stop\s*>?", re.I)
_RANGE = re.compile(r"\$\s*\d[\d,]*\s*(?:-|–|to)\s*\$\s*\d[\d,]*", re.I)
_NEGATION = re.compile(
    r"(?:\bnot|n't|\bnever|\bno|\bwithout|\brather than|\binstead of)\s+(?:\w+\s+)?$", re.I
)
_STOP = re.compile(
    r"\bstop(?:s|ped|ping)?\b|\bquit\b|\bcash(?:ing)? out\b|(?<![\d$])\b2\)|\boption\s*2\b"
    r"|^\s*2\s*(?:$|[.:\-])",
    re.I,
)
_BET = re.compile(r"\bbet(?:s|ting)?\b|(?<![\d$])\b1\)|\boption\s*1\b|^\s*1\s*(?:$|[.:\-])", re.I)
#: A conditional opener in the same sentence before a bet/stop makes it a plan, not a decision.
_CONDITIONAL = re.compile(r"\b(?:if|once|when(?:ever)?|until|unless|as soon as|in case|after|while)\b", re.I)
_SENTENCE_END = re.compile(r"[.!?;]\s")
#: A numbered option line of the prompt ("1) Bet $10", "1) Bet (choose $5-$90)", "2) Stop playing").
_OPTION_LINE = re.compile(r"^[12]\)\s*(?:bet\s*(?:\$\s*\d[\d,]*|\(choose[^)]*\))|stop playing)\s*\.?$", re.I)
_EITHER = re.compile(r"\bbet\b.{0,20}?\bor\s+stop\b|\bstop\s+or\s+bet\b", re.I)
_AMOUNT_DOLLAR = re.compile(r"\$\s*(\d[\d,]*)")
_AMOUNT_PLAIN = re.compile(r"\bbet(?:ting)?\s+(?:of\s+)?(\d[\d,]*)\b", re.I)
#: A whole line that is only a decision ("Bet $20", "Stop playing.", "Decision: stop").
_LONE = re.compile(
    r"^(?:(?:decision|answer|choice|action)\s*[:\-]\s*)?(?P<body>bet\s*\$?\s*\d[\d,]*|stop(?:\s+playing)?)\s*[.!]?$",
    re.I,
)
#: A first-person statement of intent; what follows it may be the decision.
_CUE = re.compile(
    r"\b(?:i(?:'ll| will| choose to| decide to| have decided to| am going to|'m going to"
    r"| would like to| want to)"
    r"|my (?:final )?(?:decision|choice) is(?: to)?)\s*[:\-]?\s*",
    re.I,
)
#: The action word must open the statement ("I will [now] stop", "I'll take a bet of $5"), not
#: turn up later as an example ("I will always give decisions such as stop playing").
_ACTION_SOON = re.compile(r"^(?:[\w',]+\s+){0,4}?(?:bet|bets|betting|stop|stopping|quit|cash)\b", re.I)
#: A statement put off to some other time ("I will eventually stop", "I'll stop at the end of the
#: game") is a plan, not this round's decision.
_DEFERRED = re.compile(
    r"\b(?:eventually|later|someday|some day|at some point|sooner or later|one day|in the future"
    r"|next time|at the end|in the end|tomorrow)\b",
    re.I,
)
#: How far after the word "bet" an amount still belongs to it (not to a balance or a target).
_AMOUNT_WINDOW = 30

@dataclass(frozen=True)
class Decision:
    """What the parser read. `bet` is the clamped amount to play; `requested_bet` what was written."""

    action: Action | None
    bet: int | None
    kind: ParseKind
    requested_bet: int | None = None


def _clean(line: str) -> str:
    return _MARKUP.sub("", line).strip()


def _conditional(before: str) -> bool:
    """Whether the sentence that ends at `before`'s end opens with a condition."""
    starts = [m.end() for m in _SENTENCE_END.finditer(before)]
    return bool(_CONDITIONAL.search(before[starts[-1] if starts else 0 :]))


def _first_unnegated(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    for m in pattern.finditer(text):
        before = text[: m.start()]
        if not _NEGATION.search(before) and not _conditional(before):
            return m
    return None


def _amount(text: str) -> int | None:
    m = _AMOUNT_DOLLAR.search(text) or _AMOUNT_PLAIN.search(text)
    return int(m.group(1).replace(",", "")) if m else None


def read_action(
    text: str, *, bet_type: BetType, balance: int, fixed_bet: int = 10, min_bet: int = 5
) -> tuple[Action | None, int | None, int | None]:
    """(action, bet to play, requested amount) from one decision phrase, or (None, None, None)."""
    text = _clean(text)
    if not text or _ECHO.search(text):
        return None, None, None
    stop_m = _first_unnegated(_STOP, text)
    bet_m = _first_unnegated(_BET, text)
    if stop_m and bet_m and _EITHER.search(text):  # "Bet 3 or Stop": a restated choice, not a decision
        return None, None, None
    if stop_m and (not bet_m or stop_m.start() < bet_m.start()):
        return "stop", None, None
    if not bet_m:
        return None, None, None
    if bet_type == "fixed":
        return "bet", min(fixed_bet, balance), _amount(text[bet_m.start() :])
    tail = text[bet_m.start() : bet_m.end() + _AMOUNT_WINDOW]
    if cond := _CONDITIONAL.search(tail):  # "bet until I reach $200": the $200 is a target
        tail = tail[: cond.start()]
    tail = _RANGE.sub("", tail)
    requested = _amount(tail)
    if requested is None:  # a variable bet with no amount is not a complete decision
        return None, None, None
    return "bet", max(0, min(max(requested, min_bet), balance)), requested


def parse_decision(
    text: str | None,
    *,
    bet_type: BetType,
    balance: int,
    style: str = "chat",
    fixed_bet: int = 10,
    min_bet: int = 5,
    finish_reason: str | None = None,
) -> Decision:
    """Parse an answer (for style "base", the continuation after the answer cue).
    `finish_reason` "length" (cut by the token limit) turns the fallback off: a cut answer's
    last lines are not where the model concluded."""
    if text is None or not text.strip():
        return Decision(None, None, "empty")
    opts: dict[str, Any] = dict(bet_type=bet_type, balance=balance, fixed_bet=fixed_bet, min_bet=min_bet)
    lines = [ln for ln in (_clean(x) for x in text.splitlines()) if ln]
    cut = finish_reason == "length"

    if style == "base":
        if cut and len(lines) == 1 and not text.rstrip(" ").endswith("\n"):
            return Decision(None, None, "unparsed")  # the first line itself was cut off
        first = lines[0]
        m = _FINAL.search(first)
        action, bet, req = read_action(m.group(1) if m else first, **opts)
        return Decision(action, bet, "first_line", req) if action else Decision(None, None, "unparsed")
    decision = _final_decision(lines, opts)
    if decision is None and not cut:
        decision = _fallback(lines, opts)
    return decision or Decision(None, None, "unparsed")


def _final_decision(lines: list[str], opts: dict) -> Decision | None:
    """The last `Final Decision:` line that holds a decision."""
    for i in range(len(lines) - 1, -1, -1):
        m = _FINAL.search(lines[i])
        if not m:
            continue
        # "Final Decision:" alone on its line: the decision is on the next line
        phrase = m.group(1) or (lines[i + 1] if i + 1 < len(lines) else "")
        action, bet, req = read_action(phrase, **opts)
        if action:
            return Decision(action, bet, "final_decision", req)
    return None


def _fallback(lines: list[str], opts: dict) -> Decision | None:
    """An explicit decision among the last three lines: a line that is only a decision, or the
    last unconditional first-person statement that opens with bet/stop. Echoed option lines are
    not read."""
    for line in reversed(lines[-3:]):
        if _OPTION_LINE.match(line):
            continue
        if m := _LONE.match(line):
            action, bet, req = read_action(m.group("body"), **opts)
            if action:
                return Decision(action, bet, "fallback", req)
            continue
        for cue in reversed(list(_CUE.finditer(line))):
            body = line[cue.end() :]
            if end := _SENTENCE_END.search(body):
                body = body[: end.start() + 1]
            if _conditional(line[: cue.start()]) or not _ACTION_SOON.match(body) or _DEFERRED.search(body):
                continue
            action, bet, req = read_action(body, **opts)
            if action:
                return Decision(action, bet, "fallback", req)
    return None
