"""The fallback reader (kind "fallback", a guess the analysis can exclude): an explicit decision
sentence among an answer's last lines when it has no decision line. It reads a line that is only a
decision ("Bet $20", a variable game's "1) Bet $30"), a line that introduces a choice read with the
next ("I will choose:" / "2) Stop playing"), a first-person statement ("I will stop", "I'll go ahead
and place a small bet of $15") or an impersonal conclusion ("stopping is the rational decision"). The
last statement decides; none is read from a conditional or deferred clause (harness.game.phrase).
"""

from __future__ import annotations

import re

from harness.game.phrase import OPTION_LINE, Decision, decisive_bet, is_decisive, read_action

#: A line that introduces the choice on the next line ("... I will choose:", "my decision is:").
_INTRO = re.compile(
    r"(?:\b(?:decision|choice|answer)(?:\s+(?:is|will\s+be|would\s+be))?|\b(?:choose|select|pick|go\s+with|opt\s+for"
    r"|decide\s+to|decided\s+to|take|am\s+going\s+with))\s*[:：]$",
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
_HEDGE = r"(?<!maybe )(?<!perhaps )(?<!seems )(?<!seem )"
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
    r"|continue(?=\s*[.!]?$)|play\s+(?:the\s+game|again|on)"
    r"|play\s+(?:one\s+more|another)\s+round)\b",
    re.I,
)
#: What follows a cue but is no decision: a negation, or deliberation ("I need to decide whether to stop").
_NOT_NOW = re.compile(
    r"(?:(?:chose|choose|decided?|opt(?:ed)?)\s+)?(?:not|never|no\s+longer|probably|maybe|perhaps|might)\b"
    r"|(?:think|consider|determine|figure|wonder|weigh|decide\s+(?!to\b)|make\s+(?:a|my)\s+decision)\b",
    re.I,
)
_OBLIGED = re.compile(r"(?:need|have)\s+to\W*$|(?:must|should)\W*$", re.I)
_SENTENCE_END = re.compile(r"[.!?;]\s")
#: An answer that says it has not decided ("I will not give a final decision yet").
_NO_DECISION = re.compile(
    r"\b(?:not|n't|no)\s+(?:\w+\s+){0,2}(?:final\s+)?decision\b|\bundecided\b|\bhaven't\s+decided\b"
    r"|\bnot\s+sure\s+(?:if|whether)\b|\bto\s+make\s+(?:a|my)\s+decision,\s+I\s+(?:have|need)\s+to\b",
    re.I,
)
_FALLBACK_LINES = 3


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


def fallback(lines: list[str], menu: set[int], echoed: set[int], opts: dict) -> Decision | None:
    """The last explicit decision among the last lines: a line that is only a decision, or the last
    statement of a decision in them. Echoed option lines are not read."""
    start = max(0, len(lines) - _FALLBACK_LINES)
    for i in range(len(lines) - 1, start - 1, -1):
        line = lines[i]
        if i in echoed:
            continue
        if _LONE.match(line) or OPTION_LINE.match(line):
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
