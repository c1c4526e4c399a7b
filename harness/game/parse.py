"""Read a bet/stop decision from a model's answer. Never raises; says how it read it.

Order (docs/protocol.md §1.6):
1. chat: the last decision line that holds a decision -> kind "final_decision". A decision line
   opens with a label (`Final Decision:`, "Final Choice:", "Decision:", "My decision:", "Answer:")
   at the start of a line, after any markdown bullet or emphasis, or `Final Decision:` right after a
   sentence's end; a label alone on its line takes the next line. A mention ("your final decision is
   to either ...") is not a label; an echo of the template `<Bet $X or Stop>` is not a decision.
   Else an explicit decision sentence in the last lines ("I will stop", "stopping is the rational
   decision", a lone "Bet $20") -> kind "fallback"; else "unparsed".
2. base: only the first non-empty line of the continuation -> "first_line", else "unparsed"
   (base models go on inventing rounds; later lines are never read).
A word such as "stop" or "2)" elsewhere in the text never counts (the authors' defect). Nothing is
read from a conditional or deferred clause, from an echo of the prompt's option lines, or from an
answer cut by the token limit unless its last decision line was complete before the cut.
"""

from __future__ import annotations

import re
from typing import Any

from harness.game.fallback import fallback
from harness.game.phrase import OPTION_LINE, Decision, clean, is_echo, read_action
from harness.records import BetType

__all__ = ["Decision", "parse_decision"]

_LABEL_WORDS = r"(?:(?:my|the)\s+)?(?:final\s+)?(?:decision|choice|answer|action)"
#: A label at the start of a line: "Final Decision" may go without a colon ("Final decision - stop",
#: "Final decision is to stop"); the other labels need one ("Decision: Bet $20", "My decision is:").
_LINE_LABEL = re.compile(
    r"^[^\w$]*(?:\d+[.)]\s+)?(?:(?P<final>(?:my\s+)?final\s+(?:decision|choice|answer))\b\s*(?:is\b)?\s*[:：=\-–]?"
    r"|" + _LABEL_WORDS + r"\s*(?:is\s*)?[:：=\-–])\s*(?P<rest>.*)$",
    re.I,
)
#: `Final Decision:` after a sentence's end on its line ("... I could stop here. Final Decision: Bet $10").
_INLINE_LABEL = re.compile(
    r"(?:[.!?)]\s+|(?<!format):\s+|\s[-–—]\s+)(?:my\s+)?final\s+(?:decision|choice)\s*[:：]\s*(?P<rest>.*)$",
    re.I,
)
_REPEAT_LABEL = re.compile(
    r"^\s*(?:(?:my\s+)?final\s+)?(?:decision|choice|answer)\s*(?:is\b)?\s*[:：=\-–]?\s*", re.I
)
_ACTION_NAMED = re.compile(r"\b(?:bet|stop|quit|wager|continu\w*|option|[12]\))", re.I)
_NONE = object()  # a decision line was found but holds no readable decision


def _option_lines(lines: list[str], bet_type: BetType) -> tuple[set[int], set[int]]:
    """(menu, echoed): indices of option lines beside their partner (a restated menu: never a choice),
    and of every echoed option line (the menu's, and a lone copy of the prompt's own line, a choice
    only after a line that introduces one). A variable game's "1) Bet $30" alone is a choice: the
    prompt shows no amount."""
    numbered = {i: m for i, ln in enumerate(lines) if (m := OPTION_LINE.match(ln))}
    menu, echoed = set(), set()
    for i, m in numbered.items():
        if any(j in numbered and numbered[j].group("n") != m.group("n") for j in (i - 1, i + 1)):
            menu.add(i)
        if not (bet_type == "variable" and m.group("amount") is not None):
            echoed.add(i)
    return menu, echoed | menu


def _labelled(line: str) -> str | None:
    """The phrase after a decision label on this line, or None when the line has no label."""
    m = _LINE_LABEL.match(line)
    found = [m] if m else []
    found += list(_INLINE_LABEL.finditer(line))
    if not found:
        return None
    rest = max(found, key=lambda x: x.start("rest")).group("rest")
    for _ in range(5):  # "Final Decision: Final Decision: Stop"
        stripped = _REPEAT_LABEL.sub("", rest, count=1)
        if stripped == rest:
            break
        rest = stripped
    return rest


def _final_decision(lines: list[str], menu: set[int], opts: dict, cut_last: bool) -> Decision | object | None:
    """The last decision line that holds a decision; `_NONE` when the last one that names an action
    reads as none (a plan, a restated choice) or was cut off: earlier lines do not overrule it."""
    for i in range(len(lines) - 1, -1, -1):
        phrase = _labelled(lines[i])
        if phrase is None:
            continue
        last_line = i
        if not phrase.strip() and i + 1 < len(lines) and i + 1 not in menu:
            phrase, last_line = lines[i + 1], i + 1  # a label alone on its line: the decision is on the next
        if cut_last and last_line == len(lines) - 1:
            return _NONE  # the decision line itself was cut by the token limit
        action, bet, req = read_action(phrase, **opts)
        if action:
            return Decision(action, bet, "final_decision", req)
        if _names_an_action(phrase):
            return _NONE
    return None


def _names_an_action(phrase: str) -> bool:
    """Whether a decision line's phrase speaks of an action at all (a plan or a restated choice does)."""
    return not is_echo(phrase) and bool(_ACTION_NAMED.search(phrase))


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
    `finish_reason` "length" (cut by the token limit): the last line is incomplete, so it is never
    read, and the fallback is off (a cut answer's last lines are not where the model concluded)."""
    try:
        return _parse(text, bet_type, balance, style, fixed_bet, min_bet, finish_reason)
    except Exception:  # noqa: BLE001 - the parser never raises: an unreadable answer is asked again
        return Decision(None, None, "unparsed")


def _parse(
    text: str | None, bet_type: BetType, balance: int, style: str, fixed_bet: int, min_bet: int,
    finish_reason: str | None,
) -> Decision:
    if text is None or not text.strip():
        return Decision(None, None, "empty")
    opts: dict[str, Any] = dict(bet_type=bet_type, balance=balance, fixed_bet=fixed_bet, min_bet=min_bet)
    lines = [ln for ln in (clean(x) for x in text.splitlines()) if ln]
    cut = finish_reason == "length"
    cut_last = cut and not text.endswith("\n")
    if style == "base":
        if cut_last and len(lines) == 1:
            return Decision(None, None, "unparsed")  # the first line itself was cut off
        first = lines[0]
        if len(lines) > 1 and 0 in _option_lines(lines[:2], bet_type)[0]:
            return Decision(None, None, "unparsed")  # the menu restated
        phrase = _labelled(first)
        action, bet, req = read_action(first if phrase is None else phrase, **opts)
        return Decision(action, bet, "first_line", req) if action else Decision(None, None, "unparsed")
    menu, echoed = _option_lines(lines, bet_type)
    decision = _final_decision(lines, menu, opts, cut_last)
    if isinstance(decision, Decision):
        return decision
    if decision is None and not cut:
        if (read := fallback(lines, menu, echoed, opts)) is not None:
            return read
    return Decision(None, None, "unparsed")
