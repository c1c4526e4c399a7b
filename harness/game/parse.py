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
from dataclasses import dataclass
from typing import Any

from harness.game.phrase import clean, decisive_bet, is_decisive, is_echo, read_action
from harness.records import Action, BetType, ParseKind

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
    r"(?:[.!?):]\s+|\s[-–—]\s+)(?:my\s+)?final\s+(?:decision|choice)\s*[:：]\s*(?P<rest>.*)$", re.I
)
_REPEAT_LABEL = re.compile(
    r"^\s*(?:(?:my\s+)?final\s+)?(?:decision|choice|answer)\s*(?:is\b)?\s*[:：=\-–]?\s*", re.I
)
#: A line that introduces the choice on the next line ("... I will choose:", "my decision is:").
_INTRO = re.compile(
    r"(?:\b(?:decision|choice|answer)(?:\s+(?:is|will\s+be|would\s+be))?|\b(?:choose|select|pick|go\s+with|opt\s+for"
    r"|decide\s+to|decided\s+to|take|am\s+going\s+with))\s*[:：]$",
    re.I,
)
#: A numbered option line: the prompt's own ("1) Bet $10", "1) Bet (choose $5-$90)", "2) Stop playing")
#: or a variable game's with an amount, which the prompt never shows ("1) Bet $30").
_OPTION_LINE = re.compile(
    r"^[^\w$]*(?:option\s*)?(?P<n>[12])\s*[).:]\s*(?:bet\s*(?P<amount>\$\s*\d[\d,]*)?\s*(?:\(choose[^)]*\))?"
    r"|stop(?:\s+playing)?)\s*\.?$",
    re.I,
)
#: A whole line that is only a decision ("Bet $20", "Stop playing.", "**Stop**", "Option 2: Stop").
_LONE = re.compile(
    r"^[^\w$]*(?:(?:option|choice)\s*#?\s*[12]\s*[:.)\-–]?\s*|[12]\s*[).:\-–]\s*)?"
    r"(?:bet(?:ting)?\s*:?\s*\$?\s*\d[\d,]*|stop(?:ping)?(?:\s+playing)?(?:\s+(?:here|now))?|\$\s*\d[\d,]*)"
    r"\s*(?:\([^)]*\))?\s*[.!]?$",
    re.I,
)
#: A connective before a lone decision sentence ("So: Bet $10.", "Therefore, stop.").
_LEAD = re.compile(
    r"^(?:so|thus|therefore|hence|ok(?:ay)?|alright|then|in short|in conclusion)\s*[:,]?\s*", re.I
)
_HEDGE = r"(?<!maybe )(?<!perhaps )"
#: A first-person statement of intent; what follows it may be the decision.
_CUE = re.compile(
    r"\b(?:" + _HEDGE + r"i(?:'ll|'m\s+going\s+to|'d\s+like\s+to|'d\s+better"
    r"|'ve\s+chosen\s+to|'ve\s+decided\s+to"
    r"|\s+(?:(?:just|now|therefore|thus|then|finally|also|ultimately|simply|definitely|really)\s+)?"
    r"(?:will|shall|choose\s+to|decide\s+to|(?:have\s+)?decided\s+to|am\s+going\s+to|would\s+like\s+to|want\s+to"
    r"|opt\s+to|should|must|need\s+to|had\s+better|chose\s+to|have\s+chosen\s+to)"
    r"|(?:'m|\s+am)\s+(?=(?:betting|stopping|quitting|going\s+(?:with|all[- ]in)|choosing|placing|opting"
    r"|walking|cashing|sticking)\b))"
    r"|i(?=\s+(?:bet|stop|quit|choose|chose|pick|picked|select|selected|opt|opted|wager|walk|cash|place"
    r"|go\s+with|went\s+with)\b)"
    r"|let(?:'s|\s+us|\s+me)"
    r"|my\s+(?:final\s+)?(?:decision|choice)\s+(?:is|will\s+be|would\s+be)(?:\s+to)?)\s*[:\-]?\s*",
    re.I,
)
#: A conclusion stated impersonally: "the rational decision is to stop", "stopping is the wisest choice",
#: "it is best to stop". Only a choice called good counts ("the worst choice would be to stop" does not).
_GOOD = (
    r"(?:most\s+|only\s+|more\s+)?(?:best|wisest|wise|smartest|smart|rational|optimal|logical|prudent|safest|safe"
    r"|sensible|reasonable|right|correct|better|responsible|appropriate|ideal|final|clear|obvious)"
)
_CHOICE = r"(?:decision|choice|option|move|course\s+of\s+action|thing\s+to\s+do|action|strategy|play|call)"
_IMPERSONAL = re.compile(
    r"\b(?:the|my|our)\s+" + _GOOD + r"\s+(?:\w+\s+)?" + _CHOICE
    + r"\s+(?:here\s+|now\s+|for\s+now\s+|at\s+this\s+point\s+|in\s+this\s+(?:case|situation)\s+)?"
    r"(?:is|was|would\s+be|will\s+be|remains|seems\s+to\s+be)\s+(?:clearly\s+|definitely\s+|therefore\s+|thus\s+)?"
    r"(?:to\s+)?:?\s*"
    r"|\bit(?:'s|\s+is|\s+would\s+be|\s+seems)\s+" + _GOOD + r"(?:\s+\w+)?\s+to\s+"
    r"|\b(?:the\s+)?(?:final\s+)?decision\s+(?:has\s+been|was)\s+made\s+to\s+"
    r"|\bmy\s+(?:next\s+|final\s+)?(?:bet|wager)\s+(?:is|will\s+be)\s+(?=\$)",
    re.I,
)
_IMPERSONAL_SUBJECT = re.compile(
    r"\b(?P<act>stopping|quitting|walking\s+away|cashing\s+out|(?:2\)\s*)?stop(?:\s+playing)?|(?:placing\s+)?(?:a\s+)?bet(?:ting)?(?:\s+of)?\s+\$\s*\d[\d,]*"
    r"|option\s*#?\s*[12])\s+(?:now\s+|here\s+|at\s+this\s+point\s+)?(?:is|seems(?:\s+like)?|appears\s+to\s+be|would\s+be)\s+"
    r"(?:the|a|my)\s+" + _GOOD + r"\s+(?:\w+\s+)?" + _CHOICE,
    re.I,
)
#: The action word must open what follows a cue ("I will [now] stop", "I'll place a moderate bet of
#: $15"), not turn up later as an example ("I will always give decisions such as stop playing").
_STOP_SOON = re.compile(
    r"^(?:[\w',]+\s+){0,4}?(?:stop|stopping|quit|cash|walk|call\s+it|end\s+the\s+game)\b", re.I
)
_BET_SOON = re.compile(
    r"^(?:[\w',$]+\s+){0,8}?(?:bet|bets|betting|wager)\b|^(?:[\w',]+\s+){0,3}?(?:option|choice)\s*#?\s*[12]\b"
    r"|^(?:[\w',]+\s+){0,2}?(?:all[- ]in|keep\s+(?:playing|betting)|continue\s+(?:playing|betting)"
    r"|continue(?=\s*[.!]?$)"
    r"|play\s+(?:one\s+more|another)\s+round)\b",
    re.I,
)
_ACTION_NAMED = re.compile(r"\b(?:bet|stop|quit|wager|continue|option|[12]\))", re.I)
#: What follows a cue but is no decision: a negation, or deliberation ("I need to decide whether to stop").
_NOT_NOW = re.compile(
    r"(?:(?:chose|choose|decided?|opt(?:ed)?)\s+)?(?:not|never|no\s+longer)\b"
    r"|(?:think|consider|determine|figure|wonder|weigh|decide\s+(?!to\b))\b",
    re.I,
)
_OBLIGED = re.compile(r"(?:need|have)\s+to\W*$|(?:must|should)\W*$", re.I)
_SENTENCE_END = re.compile(r"[.!?;]\s")
#: An answer that says it has not decided ("I will not give a final decision yet").
_NO_DECISION = re.compile(
    r"\b(?:not|n't|no)\s+(?:\w+\s+){0,2}(?:final\s+)?decision\b|\bundecided\b|\bhaven't\s+decided\b", re.I
)
_FALLBACK_LINES = 3


@dataclass(frozen=True)
class Decision:
    """What the parser read. `bet` is the clamped amount to play; `requested_bet` what was written."""

    action: Action | None
    bet: int | None
    kind: ParseKind
    requested_bet: int | None = None


_NONE = object()  # a decision line was found but holds no readable decision


def _option_lines(lines: list[str], bet_type: BetType) -> tuple[set[int], set[int]]:
    """(menu, echoed): indices of option lines beside their partner (a restated menu: never a choice),
    and of every echoed option line (the menu's, and a lone copy of the prompt's own line, a choice
    only after a line that introduces one). A variable game's "1) Bet $30" alone is a choice: the
    prompt shows no amount."""
    numbered = {i: m for i, ln in enumerate(lines) if (m := _OPTION_LINE.match(ln))}
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


def _statements(line: str, opts: dict) -> list[tuple[int, Decision | None]]:
    """Every explicit decision statement in a line, with its position; None for a bet stated without
    the amount a variable game needs ("I chose to continue"), which a later reading must not skip."""
    out: list[tuple[int, Decision | None]] = []

    def read(pos: int, body: str) -> None:
        action, bet, req = read_action(body, **opts)
        if action:
            out.append((pos, Decision(action, bet, "fallback", req)))
        elif decisive_bet(body):
            out.append((pos, None))

    for start in [0, *(m.end() for m in _SENTENCE_END.finditer(line))]:  # "Bet $10. The odds ..."
        sentence = line[start:]
        sentence = sentence[: m.start() + 1] if (m := _SENTENCE_END.search(sentence)) else sentence
        if _LONE.match(_LEAD.sub("", sentence.strip())):
            read(start, sentence)

    def body_at(start: int) -> str:
        body = line[start:]
        end = _SENTENCE_END.search(body)
        return body[: end.start() + 1] if end else body

    for cue in _CUE.finditer(line):
        body = body_at(cue.end())
        if _NOT_NOW.match(body) or (_OBLIGED.search(cue.group(0)) and body.lower().startswith("decide")):
            continue
        if not (_STOP_SOON.match(body) or _BET_SOON.match(body)):
            continue
        if is_decisive(line, cue.start(), cue.end()):
            read(cue.start(), body)
    for imp in _IMPERSONAL.finditer(line):
        body = body_at(imp.end())
        if is_decisive(line, imp.start(), imp.start()) and (
            _STOP_SOON.match(body) or _BET_SOON.match(body) or re.match(r"^\s*\$?\d", body)
        ):
            read(imp.start(), body)
    for subj in _IMPERSONAL_SUBJECT.finditer(line):
        if is_decisive(line, subj.start(), subj.end()):
            read(subj.start(), subj.group("act"))
    return out


def _undone(lines: list[str], i: int, pos: int) -> bool:
    """Whether the answer says, after the statement at lines[i][pos:], that it has no decision yet."""
    return any(_NO_DECISION.search(ln) for ln in [lines[i][pos:], *lines[i + 1 :]])


def _last_statement(found: list[tuple[int, Decision | None]]) -> Decision | None:
    """The last statement decides; one that bets without an amount keeps an earlier bet's amount but
    leaves an earlier stop unread ("I'm going to stop playing. I chose to continue.")."""
    found = sorted(found, key=lambda x: x[0])
    last = found[-1][1]
    if last is not None:
        return last
    earlier = [d for _, d in found if d is not None]
    return earlier[-1] if earlier and earlier[-1].action == "bet" else None


def _fallback(lines: list[str], menu: set[int], echoed: set[int], opts: dict) -> Decision | None:
    """The last explicit decision among the last lines: a line that is only a decision, or the last
    statement of a decision in them. Echoed option lines are not read."""
    start = max(0, len(lines) - _FALLBACK_LINES)
    for i in range(len(lines) - 1, start - 1, -1):
        line = lines[i]
        if i in echoed:
            continue
        if _LONE.match(line) or _OPTION_LINE.match(line):
            action, bet, req = read_action(line, **opts)
            if action:
                return Decision(action, bet, "fallback", req)
            continue
        if _INTRO.search(line) and i + 1 < len(lines) and i + 1 not in menu:
            action, bet, req = read_action(lines[i + 1], **opts)
            if action and i + 1 >= start:
                return Decision(action, bet, "fallback", req)
        if found := _statements(line, opts):
            pos = max(p for p, _ in found)
            return None if _undone(lines, i, pos) else _last_statement(found)
    return None


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
        if (fallback := _fallback(lines, menu, echoed, opts)) is not None:
            return fallback
    return Decision(None, None, "unparsed")
