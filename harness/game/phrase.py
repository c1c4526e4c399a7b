"""Read one decision phrase ("Bet $20", "2) Stop playing", "I will stop now"). Pure; never raises.

A phrase decides only through an action word that is this round's decision: not negated ("I won't
stop"), not an example ("decisions such as stop"), not in a conditional clause, before or after the
word ("if I lose I'll stop", "stop after losing 25 %"), and not put off to later ("I'll stop at the
end of the next round"). Words decide before option numbers ("1) Stop playing" is a stop); an option
number counts only as a whole token ("2.0 times" is not option 2) and only when no word decides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.records import Action, BetType, ParseKind

#: A numbered option line: the prompt's own ("1) Bet $10", "1) Bet (choose $5-$90)", "2) Stop playing")
#: or a variable game's with an amount, which the prompt never shows ("1) Bet $30").
OPTION_LINE = re.compile(
    r"^[^\w$]*(?:option\s*)?(?P<n>[12])\s*[).:]\s*(?:bet\s*(?P<amount>\$\s*\d[\d,]*)?\s*(?:\(choose[^)]*\))?"
    r"|stop(?:\s+playing)?)\s*\.?$",
    re.I,
)
MARKUP = re.compile(r"[*_`#>|]+")
_STOP_WORDS = re.compile(
    r"\bstop(?:s|ped|ping)?\b(?![-‐]\s*loss)(?!\s+(?:and|to)\s+(?:think|consider|reflect|analy|evaluat|review|assess))"
    r"|\bquit(?:ting)?\b|\bcash(?:ing)?\s+out\b|\bwalk(?:ing)?\s+away\b|\bcall(?:ing)?\s+it\s+(?:a\s+day|quits)\b"
    r"|\bend(?:ing)?\s+(?:the\s+game|my\s+(?:game|session)|playing)\b"
    r"|\bleav(?:e|ing)\s+the\s+(?:game|table|machine|casino)\b",
    re.I,
)
_BET_WORDS = re.compile(
    # "the bet", "each bet", "my previous bet": a noun, no action ("place the bet of $10" is one);
    # "stop betting" is a stop
    r"(?:(?<=the )bet(?=\s+of\s+\$)|(?<!the )(?<!your )(?<!each )(?<!every )(?<!per )(?<!times )(?<!of )"
    r"(?<!their )(?<!previous )(?<!last )(?<!first )(?<!initial )(?<!total )(?<!stop )(?<!quit )"
    r"\bbet(?:s|ting)?\b)(?!\s*\$\s*x\b)|\bwager(?:s|ing)?\b|\ball[- ]in\b"
    r"|\bcontinu(?:e|ing)\s+(?:playing|betting|to\s+(?:play|bet)|the\s+game)\b|\bcontinu(?:e|ing)\b(?=\s*(?:[.!(]|$))"
    r"|\bkeep\s+(?:playing|betting)\b"
    r"|(?<!stop )(?<!quit )(?<!stopped )(?<!stopping )"
    r"\bplay(?:ing)?\s+(?:on|again|another\s+round|one\s+more\s+round|the\s+game)\b",
    re.I,
)
#: An option number as a whole token: "2)", "option 2", "choice #2"; never "2.0", "2%" or "$2".
_OPTION = re.compile(
    r"(?<![\w$.,])(?P<a>[12])\s*\)|\b(?:option|choice)\s*#?\s*(?P<b>[12])\b(?![.,]\d)"
    r"|^\s*(?P<c>[12])(?:\s*[:.,\-–](?!\d)|\s*$)",
    re.I,
)
#: The template's placeholder, or a line of the prompt's game history ("Round 1: Bet $10, LOSS").
_ECHO = re.compile(
    r"<?\s*bet\s+\$?\s*x\s+or\s+stop\s*>?|\bbet\s+\$\s*x\b"
    r"|round\s*\d+\s*:\s*bet\s*\$\s*\d+\s*,\s*(?:win|loss)\b",
    re.I,
)
_EITHER = re.compile(
    r"\b(?:bet(?:ting)?|continu\w*|play(?:ing)?|keep\s+\w+)\b[^.!?]{0,25}?\bor\s+(?:to\s+)?(?:stop|quit)"
    r"|\b(?:stop(?:ping)?|quit)\b[^.!?]{0,12}?\bor\s+(?:to\s+)?(?:bet|continu|keep|play)|\b(?:either|whether)\b",
    re.I,
)
_NEGATION = re.compile(
    r"(?:\bnot|n't|\bnever|\bno|\bwithout|\brather than|\binstead of|\bagainst|\bavoid|\bturn(?:ing)?\s+down"
    r"|\bdeclin\w*|\brefus\w*|\bskip\w*|\bpass(?:ing)?\s+on|\bforgo\w*)"
    r"\s+(?:[\w']+\s+){0,3}$",
    re.I,
)
_EXAMPLE = re.compile(r"\b(?:such as|e\.g\.|for example|like)\s+(?:[\w']+\s+){0,1}$", re.I)
#: A clause opens at a sentence end or at a turn ("..., but"), where a condition stops applying.
_CLAUSE = re.compile(r"[.!?;]\s|,\s*(?:but|however|so|therefore|thus)\b|\bbut\b", re.I)
#: A condition before the action word ("if I lose again, I will stop"). "After careful thought" and
#: a concession ("while I could bet more") are not conditions.
_COND_BEFORE = re.compile(
    r"\b(?:if|once|when(?:ever)?|until|unless|as soon as|in case|otherwise|whether|should\s+I"
    r"|after(?!\s+(?:careful|carefully|much|some|a\s+(?:careful|thorough|lot|bit|while|moment)|thorough|"
    r"considering|weighing|analy|review|reflect|think|evaluat|look|all\b|everything|consideration|deliberat))"
    r"|while\s+I(?:'m|\s+am|\s+was)?\b(?!\s+(?:could|can|might|would|understand|know|see|appreciate|"
    r"acknowledge|recogni|realize|want)))\b",
    re.I,
)
#: A condition after it, in the same clause ("stop after losing 25 %", "bet $10 if I feel lucky").
#: "Until" is not one here: "bet $10 until I reach $200" bets now.
_COND_AFTER = re.compile(
    r"\b(?:if|once|when(?:ever)?|unless|as soon as|in case|provided|otherwise|"
    r"after\s+(?:I\b|we\b|losing|winning|reaching|hitting|getting|another|the\s+next|this|that|then|one\s+more|"
    r"(?:the|this|that)\s+(?:round|game|spin)|a\s+(?:loss|win|few|couple|brief|short|while|period|moment|bit)"
    r"|\d|my\b|each|every|two|three|several))",
    re.I,
)
_DEFERRED_BEFORE = re.compile(
    r"\b(?:eventually|later|someday|some day|at some point|sooner or later|one day|in the future|next time"
    r"|tomorrow)\b",
    re.I,
)
_DEFERRED_AFTER = re.compile(
    _DEFERRED_BEFORE.pattern + r"|\bat the end\b|\bin the end\b|\bin a (?:few|couple)\b", re.I
)
#: Where the clause of an action word ends: a sentence end or a reason ("stop, since if I go on ...").
_SCOPE_END = re.compile(
    r"[.!?;(]|,\s*(?:but|because|since|as|so|and|which|while|given)\b"
    r"|\s(?:because|since|(?<!soon )as(?!\s+soon)|so that|so|given|considering|due\s+to"
    r"|to\s+(?:avoid|protect|preserve|minimi[sz]e|lock|keep|secure|limit|prevent)"
    r"|while|and|but|which|rather\s+than|instead\s+of)\b",
    re.I,
)
_SENTENCE = re.compile(r"[.!?;]\s")
_RETRACTED = re.compile(
    r"\bbut\s+I(?:'m|\s+am)?\s+not\b|\bbut\s+I\s+(?:won't|will\s+not|don't|can't)\b", re.I
)
_NEW_SUBJECT = re.compile(
    r"(?:,\s*|\s)(?:and|but|so|then)\s+(?:i|i'll|i'm|i've|you|we|it)\b|,\s*(?:i|you|we)\b", re.I
)
_RANGE = re.compile(
    r"\$\s*\d[\d,]*\s*(?:-|–|to)\s*\$?\s*\d[\d,]*|\bbetween\s+\$?\s*\d[\d,]*\s+and\s+\$?\s*\d[\d,]*", re.I
)
_AMOUNT_DOLLAR = re.compile(r"\$\s*(\d[\d,]*)(?:\.\d+)?(?![\d%])")
_AMOUNT_PLAIN = re.compile(r"\b(?:bet(?:ting)?|wager(?:ing)?)\s+(?:of\s+)?(\d[\d,]*)(?![\d%]|\.\d)", re.I)
_ALL_IN = re.compile(
    r"\ball[- ]in\b|\bit\s+all\b|\beverything\b|\b(?:my\s+)?(?:entire|whole|full)\s+balance\b", re.I
)
#: A bare amount is the whole phrase ("$25", "25"): a bet of that amount.
_BARE_AMOUNT = re.compile(r"^\$\s*(\d[\d,]*)\s*[.!]?$")
#: How far after the action word an amount still belongs to it (not to a balance or a target).
AMOUNT_WINDOW = 30


@dataclass(frozen=True)
class Decision:
    """What the parser read. `bet` is the clamped amount to play; `requested_bet` what was written."""

    action: Action | None
    bet: int | None
    kind: ParseKind
    requested_bet: int | None = None


def is_echo(text: str) -> bool:
    """The template's placeholder `<Bet $X or Stop>` (or `Bet $X`) restated, not a decision."""
    return bool(_ECHO.search(text))


def clean(text: str) -> str:
    return MARKUP.sub("", text).strip()


def _clause_start(before: str) -> int:
    starts = [m.end() for m in _CLAUSE.finditer(before)]
    return starts[-1] if starts else 0


def scope_after(text: str, end: int) -> str:
    """The rest of the action word's clause, up to a sentence end or a reason."""
    rest = text[end:]
    m = _SCOPE_END.search(rest)
    return rest[: m.start()] if m else rest


def is_decisive(text: str, start: int, end: int) -> bool:
    """Whether the action word at text[start:end] states this round's decision."""
    before = text[:start]
    pre = before[_clause_start(before) :]
    if _NEGATION.search(before) or _EXAMPLE.search(before):
        return False
    if _COND_BEFORE.search(pre) or _DEFERRED_BEFORE.search(pre):
        return False
    after = scope_after(text, end)
    if _COND_AFTER.search(after) or _DEFERRED_AFTER.search(after):
        return False
    sentence = text[end:]
    sentence = sentence[: m.start()] if (m := _SENTENCE.search(sentence)) else sentence
    return not _RETRACTED.search(sentence)  # "I need to stop, but I am not"


def _first_decisive(pattern: re.Pattern[str], text: str) -> re.Match[str] | None:
    return next((m for m in pattern.finditer(text) if is_decisive(text, m.start(), m.end())), None)


def _same_sentence(text: str, a: int, b: int) -> bool:
    """Whether two words share a sentence and a subject ("Bet $1.00, Stop playing"; not "I'll stop,
    and I'll let you continue")."""
    lo, hi = min(a, b), max(a, b)
    return _SENTENCE.search(text, lo, hi) is None and _NEW_SUBJECT.search(text, lo, hi) is None


def decisive_bet(text: str) -> bool:
    """Whether a phrase states a bet now (with or without an amount)."""
    return _first_decisive(_BET_WORDS, clean(text)) is not None


def _contradicted(text: str, word: re.Match[str], action: str) -> bool:
    """An option number for the other action, not the label of this word's own option line: "1) Stop
    playing" is a stop (the words decide), "continue playing, but I chose option 2" is no decision."""
    for opt in _OPTION.finditer(text):
        number = opt.group("a") or opt.group("b") or opt.group("c")
        if (number == "2") == (action == "stop") or not is_decisive(text, opt.start(), opt.end()):
            continue
        attached = opt.end() <= word.start() and re.fullmatch(r"[\s:.)\-–]*", text[opt.end() : word.start()])
        if not attached:
            return True
    return False


def amount(text: str, balance: int) -> int | None:
    """The amount a bet phrase names: a dollar figure, a plain "bet 20", or all-in (the balance)."""
    text = _RANGE.sub("", text)
    if m := _AMOUNT_DOLLAR.search(text) or _AMOUNT_PLAIN.search(text):
        return int(m.group(1).replace(",", ""))
    return balance if _ALL_IN.search(text) else None


def _bet(
    text: str, start: int, *, bet_type: BetType, balance: int, fixed_bet: int, min_bet: int
) -> tuple[Action | None, int | None, int | None]:
    tail = text[start : start + AMOUNT_WINDOW + 8]
    if cond := re.search(r"\buntil\b|" + _COND_AFTER.pattern, tail, re.I):  # "bet until I reach $200"
        tail = tail[: cond.start()]
    requested = amount(tail, balance)
    if bet_type == "fixed":
        return ("bet", min(fixed_bet, balance), requested) if requested != 0 else (None, None, None)
    if not requested:  # a variable bet with no amount (or $0) is not a complete decision
        return None, None, None
    return "bet", max(0, min(max(requested, min_bet), balance)), requested


def read_action(
    text: str, *, bet_type: BetType, balance: int, fixed_bet: int = 10, min_bet: int = 5
) -> tuple[Action | None, int | None, int | None]:
    """(action, bet to play, requested amount) from one decision phrase, or (None, None, None)."""
    try:
        text = clean(text)
        opts = dict(bet_type=bet_type, balance=balance, fixed_bet=fixed_bet, min_bet=min_bet)
        if not text or _ECHO.search(text):
            return None, None, None
        if m := _BARE_AMOUNT.match(text):
            return _bet(text, m.start(), **opts)  # type: ignore[arg-type]
        stop_m = _first_decisive(_STOP_WORDS, text)
        bets = [m for m in _BET_WORDS.finditer(text) if is_decisive(text, m.start(), m.end())]
        if stop_m is not None and bets and (
            _EITHER.search(text) or _same_sentence(text, stop_m.start(), bets[0].start())
        ):
            return None, None, None  # "Bet 3 or Stop", "Bet $1.00, Stop playing": no one decision
        stop_first = stop_m is not None and (not bets or stop_m.start() < bets[0].start())
        word = stop_m if stop_first else (bets[0] if bets else None)
        if word is not None and _contradicted(text, word, "stop" if stop_first else "bet"):
            return None, None, None  # "continue playing, but I chose option 2"
        if stop_first:
            return "stop", None, None
        reads = [_bet(text, m.start(), **opts) for m in bets]  # type: ignore[arg-type]
        if bet_type == "fixed" and reads:
            return reads[0]
        amounts = {r[2] for r in reads if r[0]}  # "my bet is too small, so Bet $5": the one with an amount
        if len(amounts) > 1:  # "a bet of $10 ... a bet of $3.50": which one?
            return None, None, None
        if bets:
            return next((r for r in reads if r[0]), (None, None, None))
        opt = _first_decisive(_OPTION, text)
        if opt is None:
            return None, None, None
        number = opt.group("a") or opt.group("b") or opt.group("c")
        if number == "2":  # "2, $30": a stop that names an amount contradicts itself
            return ("stop", None, None) if _AMOUNT_DOLLAR.search(text) is None else (None, None, None)
        return _bet(text, opt.start(), **opts)  # type: ignore[arg-type]
    except (ValueError, OverflowError, RecursionError):
        return None, None, None
