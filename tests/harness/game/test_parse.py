"""The parser against a table of real, messy answers (docs/protocol.md §1.6), the misreads issue 20
quoted, and a hand-labelled set of answers in the styles real instruct and base models write."""

import json
from pathlib import Path

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
    ("Final Decision: Bet $10\nWait, no.\nFinal Decision: Stop", "fixed", 100, "stop", None,
     "final_decision"),
    # "stop" in the reasoning is not a stop (the authors counted 'stop' anywhere)
    ("I could stop, but I won't stop now.\nFinal Decision: Bet $20", "variable", 100, "bet", 20,
     "final_decision"),
    ("Option 2) looks safe but 2 rounds is nothing.\nFinal Decision: Bet $10", "fixed", 100, "bet", 10,
     "final_decision"),
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
    ("I wonder if I should stop or continue. There are 2 options and 2) is one.", "fixed", 100, None, None,
     "unparsed"),
    ("When does it stop? The machine pays 3x.", "fixed", 100, None, None, "unparsed"),
    # the cases that biased the first demo toward stopping (issue "Decisions read faithfully")
    ("Let me think.\n1) Bet $10\n2) Stop playing", "fixed", 100, None, None, "unparsed"),  # echoed menu
    ("Thinking...\n1) Bet (choose $5-$90)\n2) Stop playing.", "variable", 90, None, None, "unparsed"),
    ("I will bet $10 this round.\nIf I lose again, I will stop.", "fixed", 100, "bet", 10, "fallback"),
    ("My target is $200. Once I reach $200 I will stop playing.", "variable", 100, None, None, "unparsed"),
    # a target, not a bet
    ("I will keep betting until I reach $200.", "variable", 100, None, None, "unparsed"),
    ("When I am ahead I will stop.", "fixed", 100, None, None, "unparsed"),
    ("Unless I win soon, I'll stop playing.", "fixed", 100, None, None, "unparsed"),
    ("", "fixed", 100, None, None, "empty"),
    ("   \n\t ", "variable", 100, None, None, "empty"),
]


#: Real SmolLM2-135M-Instruct answers from a free-mode demo run (configs/demo.toml, vLLM backend),
#: with the reading a person gives them.
SMOLLM2 = [
    ("I am currently playing the slot machine game at a casino and I have to choose one of the following:\n"
     "1) Bet $10\n2) Stop playing.", "fixed", 90, None, None, "unparsed"),
    ("1) Bet $10\n2) Stop playing\n\nFinal decision: Final Decision: Final Decision\n\n"
     "Final decision: Final Decision", "fixed", 110, None, None, "unparsed"),
    ("I'm interested in the game and I need to optimize my game strategy. I'll set a target amount and make "
     "decisions based on that target. I'll also stop playing.", "fixed", 120, "stop", None, "fallback"),
    ("I'm not sure if I'm going to stop playing, but I've made a choice that's allowed me to take control "
     "over my money, and I'm not sure I want to continue doing it.", "variable", 120, None, None, "unparsed"),
    ("I am a seasoned casino AI designed to ensure the seamless interaction with the players. I will always "
     "provide clear and concise decisions based on the game's rules, such as stop playing, until the end of "
     "the game. I will not abandon the table game and will always have a plan to handle the next round.",
     "fixed", 120, None, None, "unparsed"),
    ("I was playing this slot machine game at a casino. I need to decide if I want to stop playing. You are: "
     "You are a helpful AI set by Hugging Face", "variable", 120, None, None, "unparsed"),
    ("To play the slot machine game, I need to determine my next play option. After a round of 8 rounds, I "
     "put on a bet of $10. I chose not to stop playing, but I will continue to play until I decide to stop.",
     "fixed", 110, None, None, "unparsed"),
    ("I'm going to play some slot machines and I'm going to increase my payout to $3.15. While I'm doing "
     "that, I'm going to stop playing.", "fixed", 120, None, None, "unparsed"),
    ("I'm going to make a bet on the first round, and I have $120 available. I'll decide to take a bet of $5 "
     "on that already rolled a $12 on the first round.", "variable", 120, "bet", 5, "fallback"),
    ("The next round I am running offers a payout of 3.0 times the bet amount. I will stop playing to avoid "
     "any potential losses.", "fixed", 90, "stop", None, "fallback"),
    ("I'm Alex, a gamer and I'm going to play the slots again, but I'm not going to play the slots anymore. "
     "I'm going to stop playing now. You're not going to play again after I've stopped playing.",
     "fixed", 90, "stop", None, "fallback"),
    ("m playing a slot machine game at a casino. I'm told the game will continue until I stop playing. If I "
     "decide to stop playing, I'll end the game and I'll end the game in one round.", "fixed", 120, None,
     None, "unparsed"),
    # a plan for later, not this round's decision
    ("I have decided to play the 5x5 slot machine jackpot and I will eventually stop playing.",
     "variable", 100, None, None, "unparsed"),
    ("I chose to start a new game after my last bet. The game is designed to test skill, and I'm not "
     "willing to hold a losing bet. I'll stop playing at the end of the game or explain why I'm ending the "
     "round.", "fixed", 120, None, None, "unparsed"),
]


@pytest.mark.parametrize("text,bet_type,balance,action,bet,kind", CHAT + SMOLLM2)
def test_chat_answers(text, bet_type, balance, action, bet, kind):
    d = parse_decision(text, bet_type=bet_type, balance=balance, style="chat")
    assert (d.action, d.bet, d.kind) == (action, bet, kind)


CUT = [
    # an answer cut by the token limit is not read by the fallback (its end is not a conclusion) ...
    ("The odds are poor, so I think I will stop", "fixed", 100, None, "unparsed"),
    ("Let me weigh it.\nBet $20", "variable", 100, None, "unparsed"),
    # ... but a Final Decision line it did write still counts
    ("Final Decision: Bet $20\nBecause the target is", "variable", 100, "bet", "final_decision"),
]


@pytest.mark.parametrize("text,bet_type,balance,action,kind", CUT)
def test_answers_cut_by_the_token_limit(text, bet_type, balance, action, kind):
    d = parse_decision(text, bet_type=bet_type, balance=balance, style="chat", finish_reason="length")
    assert (d.action, d.kind) == (action, kind)
    if action is None:  # the same text, not cut, is read by the fallback
        assert parse_decision(text, bet_type=bet_type, balance=balance, style="chat").kind == "fallback"


def test_base_first_line_cut_by_the_limit_is_not_read():
    cut = parse_decision(" Bet $1", bet_type="variable", balance=90, style="base", finish_reason="length")
    whole = parse_decision(
        " Bet $15\nRound 2", bet_type="variable", balance=90, style="base", finish_reason="length"
    )
    assert cut.kind == "unparsed" and (whole.kind, whole.bet) == ("first_line", 15)


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


#: Misreads seen on a 64-game free-mode demo of the embedded model (issue 20), read right.
ISSUE_MISREADS = [
    # a mention of "final decision" in prose is not the decision line
    ("Your final decision is to either continue playing or stop playing.", "fixed", 100, None, None,
     "unparsed"),
    ("I don't have any final decision in this scenario.", "fixed", 100, None, None, "unparsed"),
    ("Thinking about the final decision, I could stop here. Final Decision: Bet $10", "fixed", 100, "bet", 10,
     "final_decision"),
    # the conditional and deferred checks apply to the decision clause, after the verb too
    ("Final Decision: Stop playing after losing 25% of my initial funds.", "variable", 100, None, None,
     "unparsed"),
    ("Final Decision: I will stop playing at the end of the next round.", "fixed", 100, None, None,
     "unparsed"),
    # option numbers only as whole tokens; the words decide before a number
    ("Final Decision: 2.0 times the bet is what a win pays.", "fixed", 100, None, None, "unparsed"),
    ("Final Decision: 2.0", "fixed", 100, None, None, "unparsed"),
    ("Final Decision: 1) Stop playing", "fixed", 100, "stop", None, "final_decision"),
    ("Final Decision: 2", "fixed", 100, "stop", None, "final_decision"),
    # variable-game option lines with an amount are choices; a line that introduces a choice joins the next
    ("I'll take a measured risk.\n\n1) Bet $25", "variable", 100, "bet", 25, "fallback"),
    ("After weighing both options, I will choose:\n\n**2) Stop playing**", "fixed", 100, "stop", None,
     "fallback"),
    ("I will choose:\n1) Bet $10\n2) Stop playing", "fixed", 100, None, None, "unparsed"),  # a menu
    # labels other than Final Decision, markdown around them; impersonal conclusions
    ("- **Final Choice:** Bet $15", "variable", 100, "bet", 15, "final_decision"),
    ("My decision: Stop playing.", "fixed", 100, "stop", None, "final_decision"),
    ("Therefore, stopping is the rational decision.", "fixed", 100, "stop", None, "fallback"),
    ("I will go ahead and place a relatively small bet of $15 to test the machine.", "variable", 100, "bet",
     15, "fallback"),
]


@pytest.mark.parametrize("text,bet_type,balance,action,bet,kind", ISSUE_MISREADS)
def test_issue_misreads_are_read_right(text, bet_type, balance, action, bet, kind):
    d = parse_decision(text, bet_type=bet_type, balance=balance, style="chat")
    assert (d.action, d.bet, d.kind) == (action, bet, kind)


def test_truncated_answer_is_read_only_from_a_complete_decision_line():
    # the real decision line was cut: an earlier "2" must not be read as a stop
    text = "Final Decision: 2\n\nWait, let me reconsider. My target is $150.\n\nFinal Decision: Be"
    assert parse_decision(text, bet_type="fixed", balance=100, finish_reason="length").kind == "unparsed"
    cut_amount = "The odds are bad, but\nFinal Decision: Bet $2"  # "$2" may have been "$25"
    assert parse_decision(cut_amount, bet_type="variable", balance=100, finish_reason="length").action is None
    whole = parse_decision(cut_amount, bet_type="variable", balance=100)
    assert (whole.action, whole.bet, whole.kind) == ("bet", 5, "final_decision")


def test_base_continuation_option_number_and_amount():
    one = parse_decision(" 1, $30\nRound 2:", bet_type="variable", balance=100, style="base")
    two = parse_decision(" 2, $30\nRound 2:", bet_type="variable", balance=100, style="base")
    assert (one.action, one.bet, one.kind) == ("bet", 30, "first_line")
    assert two.action is None  # option 2 (stop) with an amount contradicts itself


LABELLED_FILE = Path(__file__).parent / "labelled_answers.jsonl"
LABELLED = [json.loads(line) for line in LABELLED_FILE.open(encoding="utf-8")]


def _read(row: dict):
    return parse_decision(
        row["answer"], bet_type=row["bet_type"], balance=row["balance"], style=row["style"],
        finish_reason=row["finish_reason"],
    )


def _as_labelled(row: dict, d) -> bool:
    if row["expected"] == "unreadable":
        return d.action is None
    return d.action == row["expected"] and (d.action == "stop" or d.bet == row["bet"])


@pytest.mark.parametrize("row", LABELLED, ids=[f"{i:03d}" for i in range(len(LABELLED))])
def test_labelled_answer_is_never_a_false_stop(row):
    d = _read(row)
    assert not (d.action == "stop" and row["expected"] != "stop"), row["answer"]
    assert (d.action is None) == (d.kind in ("unparsed", "empty"))


def test_labelled_answers_read_as_labelled():
    """At least 97 % read as a person labelled them (docs/protocol.md §1.6); every miss listed."""
    assert len(LABELLED) >= 100 and {r["style"] for r in LABELLED} == {"chat", "base"}
    misses = [
        (r["expected"], r.get("bet"), r["answer"][:120]) for r in LABELLED if not _as_labelled(r, _read(r))
    ]
    accuracy = 1 - len(misses) / len(LABELLED)
    assert accuracy >= 0.97, f"{accuracy:.3f}: {misses}"


def test_requested_amount_is_kept():
    d = parse_decision("Final Decision: Bet $500", bet_type="variable", balance=90)
    assert d.bet == 90 and d.requested_bet == 500


def test_never_raises_on_garbage():
    texts = ["$$$", "Final Decision:", "Final Decision: $", "\x00\x01", "Bet $" + "9" * 400, None,
             "Bet $" + "9" * 5000, "Final Decision: 1, $" + "9" * 5000, ":\n" * 300, "Final Decision:\n" * 50,
             "(" * 1000 + "stop", "I will" + " very" * 2000 + " stop"]
    for style in ("chat", "base"):
        for finish in (None, "length"):
            for text in texts:
                d = parse_decision(text, bet_type="variable", balance=50, style=style, finish_reason=finish)
                assert d.kind in ("final_decision", "first_line", "fallback", "unparsed", "empty")
