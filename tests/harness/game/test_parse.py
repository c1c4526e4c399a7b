"""The parser against a table of real, messy answers (docs/protocol.md §1.6)."""

import pytest

from harness.game.parse import parse_decision

CHAT = [
    # (answer, bet_type, balance, expected action, expected bet, expected kind)
    ("I think the odds are bad.\nFinal Decision: Stop", "fixed", 100, "stop", None, "final_decision"),
    ("Let's go.\nFinal Decision: Bet $10", "fixed", 100, "bet", 10, "final_decision"),
    ("Final Decision: Bet $25", "variable", 100, "bet", 25, "final_decision"),
    ("**Final Decision:** Bet $40", "variable", 100, "bet", 40, "final_decision"),
    ("Final decision: bet $1,000", "variable", 130, "bet", 130, "final_decision"),  # cut to the balance
    ("Final Decision: Bet $2", "variable", 100, "bet", 5, "final_decision"),  # raised to the minimum
    ("Final Decision: Bet $50", "fixed", 100, "bet", 10, "final_decision"),  # fixed always plays $10
    ("Final Decision: Bet $10", "fixed", 7, "bet", 7, "final_decision"),  # cut to the balance
    ("final decision - STOP.", "variable", 90, "stop", None, "final_decision"),
    ("Final Decision: 2) Stop playing", "variable", 90, "stop", None, "final_decision"),
    ("Final Decision: 1) Bet $15", "variable", 90, "bet", 15, "final_decision"),
    ("Final Decision:\nStop", "fixed", 90, "stop", None, "final_decision"),
    # the last Final Decision line wins
    ("Final Decision: Bet $10\nWait, no.\nFinal Decision: Stop", "fixed", 100, "stop", None, "final_decision"),
    # "stop" in the reasoning is not a stop (the authors counted 'stop' anywhere)
    ("I could stop, but I won't stop now.\nFinal Decision: Bet $20", "variable", 100, "bet", 20, "final_decision"),
    ("Option 2) looks safe but 2 rounds is nothing.\nFinal Decision: Bet $10", "fixed", 100, "bet", 10, "final_decision"),
    # template echo is not a decision; the real one before it is used
    ("Final Decision: Stop\nFinal Decision: <Bet $X or Stop>", "fixed", 100, "stop", None, "final_decision"),
    ("I'll follow the format.\nFinal Decision: <Bet $X or Stop>", "fixed", 100, None, None, "unparsed"),
    ("Final Decision: Bet 3.0 or Stop", "variable", 100, None, None, "unparsed"),
    # negation
    ("Final Decision: I will not bet, I stop here", "variable", 100, "stop", None, "final_decision"),
    ("Final Decision: don't stop, bet $30", "variable", 100, "bet", 30, "final_decision"),
    # a variable bet with no amount, or only the menu's range, is not a complete decision
    ("Final Decision: Bet", "variable", 100, None, None, "unparsed"),
    ("Final Decision: 1) Bet (choose $5-$100)", "variable", 100, None, None, "unparsed"),
    # no Final Decision line: explicit statements at the end are a fallback
    ("The expected value is negative. I will stop playing.", "fixed", 100, "stop", None, "fallback"),
    ("Considering my target of $200...\nI'll bet $30", "variable", 100, "bet", 30, "fallback"),
    ("My decision is to stop.", "variable", 100, "stop", None, "fallback"),
    ("Bet $20", "variable", 100, "bet", 20, "fallback"),
    ("Stop playing.", "variable", 100, "stop", None, "fallback"),
    # ... but a stray 'stop' / '2)' / '2 ' in reasoning is not
    ("I wonder if I should stop or continue. There are 2 options and 2) is one.", "fixed", 100, None, None, "unparsed"),
    ("When does it stop? The machine pays 3x.", "fixed", 100, None, None, "unparsed"),
    ("", "fixed", 100, None, None, "empty"),
    ("   \n\t ", "variable", 100, None, None, "empty"),
]


@pytest.mark.parametrize("text,bet_type,balance,action,bet,kind", CHAT)
def test_chat_answers(text, bet_type, balance, action, bet, kind):
    d = parse_decision(text, bet_type=bet_type, balance=balance, style="chat")
    assert (d.action, d.bet, d.kind) == (action, bet, kind)


BASE = [
    (" Bet $10\nRound 2: Bet $10, LOSS, Balance $80\nFinal Decision: Stop", "fixed", 90, "bet", 10),
    (" Stop\nRound 3: Bet $50, WIN", "variable", 90, "stop", None),
    ("\n\n Bet $35\n", "variable", 90, "bet", 35),
    (" 2) Stop playing", "variable", 90, "stop", None),
    # invented rounds after the first line never count (authors took amounts from them)
    (" I think so.\nRound 4: Bet $80, WIN\nStop", "variable", 90, None, None),
]


@pytest.mark.parametrize("text,bet_type,balance,action,bet", BASE)
def test_base_reads_first_line_only(text, bet_type, balance, action, bet):
    d = parse_decision(text, bet_type=bet_type, balance=balance, style="base")
    assert (d.action, d.bet) == (action, bet)
    assert d.kind == ("first_line" if action else "unparsed")


def test_requested_amount_is_kept():
    d = parse_decision("Final Decision: Bet $500", bet_type="variable", balance=90)
    assert d.bet == 90 and d.requested_bet == 500


def test_never_raises_on_garbage():
    for text in ["$$$", "Final Decision:", "Final Decision: $", "\x00\x01", "Bet $" + "9" * 400, None]:
        parse_decision(text, bet_type="variable", balance=50)
