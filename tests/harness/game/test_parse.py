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


def test_requested_amount_is_kept():
    d = parse_decision("Final Decision: Bet $500", bet_type="variable", balance=90)
    assert d.bet == 90 and d.requested_bet == 500


def test_never_raises_on_garbage():
    for text in ["$$$", "Final Decision:", "Final Decision: $", "\x00\x01", "Bet $" + "9" * 400, None]:
        parse_decision(text, bet_type="variable", balance=50)
