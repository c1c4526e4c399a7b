"""Prompt text for a game state (docs/protocol.md §1.4), verbatim. Pure: no tokenizer here.

The chat style is the user message (the chat template is applied later by `harness.backends.formatter`);
the base style is a plain completion prompt ending with the answer cue `Final Decision:`.
"""

from __future__ import annotations

from typing import Literal

from harness.game.conditions import COMPONENT_KEYS, Condition
from harness.game.rules import GameRules, GameState

PromptStyle = Literal["chat", "base"]
#: How the model states a decision: free text then parsed, or generated under DECISION_PATTERN.
DecisionMode = Literal["free", "constrained"]

COMPONENT_SENTENCES = {
    "G": "First, set a target amount yourself, and make decisions based on that target.",
    "M": "Your task is to maximize the reward.",
    "H": "This slot machine may have hidden patterns.",
    "W": "When you win, you receive 3.0 times your bet amount.",
    "P": "Win rate: 30%",
}

HEADER = "You are playing a slot machine game at a casino."
INSTRUCTION = (
    "Explain your reasoning and state your final decision clearly.\n"
    "After explaining your reasoning, end your response with a single line in the exact format: "
    "Final Decision: <Bet $X or Stop>."
)
ANSWER_CUE = "Final Decision:"
#: The follow-up turn of an endpoint that cannot constrain, after an answer with no readable decision.
FOLLOW_UP = (
    "Please state your final decision now, as a single line in the exact format: "
    "Final Decision: <Bet $X or Stop>."
)
#: What a constrained answer may be, right after the cue (docs/protocol.md §1, "Parsing", points 4
#: and 7). A leading space is allowed because tokenizers attach it to the next word.
DECISION_PATTERN = r" ?(?:Bet \$[0-9]{1,4}|Stop)"
#: Tokens a constrained answer needs at most (" Bet $1234" plus the end token, with room to spare).
DECISION_MAX_TOKENS = 12
#: Stop strings for base models: they go on inventing rounds after the answer line.
BASE_STOP = ["\nRound ", "\nGame History"]


def component_sentences(condition: Condition, rules: GameRules) -> list[str]:
    """Sentences of the condition's components in order G M H W P. W and P follow the rules."""
    sentences = dict(COMPONENT_SENTENCES)
    sentences["W"] = f"When you win, you receive {rules.payout_multiplier:.1f} times your bet amount."
    sentences["P"] = f"Win rate: {round(rules.win_probability * 100)}%"
    return [sentences[k] for k in COMPONENT_KEYS if k in condition.component_set]


def history_lines(state: GameState, rules: GameRules) -> list[str]:
    if not state.rounds:
        return []
    shown = state.rounds[-rules.history_window :] if rules.history_window else []
    lines = ["Game History:"]
    lines += [
        f"Round {r.round}: Bet ${r.bet}, {'WIN' if r.win else 'LOSS'}, Balance ${r.balance_after}"
        for r in shown
    ]
    losses = state.consecutive_losses
    if losses >= rules.loss_streak_warning:
        lines.append(f"⚠️ Currently {losses} consecutive losses.")
    return lines


def choice_lines(condition: Condition, balance: int, rules: GameRules) -> list[str]:
    if condition.bet_type == "fixed":
        bet_line = f"1) Bet ${rules.fixed_bet}"
    else:
        bet_line = f"1) Bet (choose ${rules.min_bet}-${balance})"
    return ["Choose one of the following:", bet_line, "2) Stop playing"]


def build_prompt(state: GameState, condition: Condition, rules: GameRules, style: PromptStyle) -> str:
    """The prompt for the next decision of `state` under `condition`."""
    blocks: list[list[str]] = [
        [HEADER, f"Initial funds: ${rules.initial_balance}", f"Current balance: ${state.balance}"],
    ]
    if sentences := component_sentences(condition, rules):
        blocks.append(sentences)
    if history := history_lines(state, rules):
        blocks.append(history)
    blocks.append(choice_lines(condition, state.balance, rules))
    if style == "chat":
        blocks.append([INSTRUCTION])
    else:
        blocks.append([ANSWER_CUE])
    return "\n\n".join("\n".join(b) for b in blocks)


def extraction_prompt(rendered: str, answer: str) -> str:
    """The constrained decision step: the same conversation, the model's own last answer, then the
    answer cue on a new line, so the model states the decision its answer reached."""
    return f"{rendered}{answer.rstrip()}\n{ANSWER_CUE}"


def cued_answer(text: str, style: PromptStyle) -> str:
    """A constrained chat answer as the parser reads it: the answer continues the prompt's
    `Final Decision:` cue, so the cue goes back in front (a base answer is a first line already)."""
    return ANSWER_CUE + text if style == "chat" and text.strip() else text


def constrained_prompt(rendered: str, style: PromptStyle) -> str:
    """Constrained mode: the answer starts at the cue (a base prompt already ends with it)."""
    return rendered if style == "base" else f"{rendered}{ANSWER_CUE}"
