"""Prefix matching for constrained decoding: which pieces keep an answer a prefix of the
decision pattern, on a small vocabulary and on the real SmolLM2 tokenizer."""

import re

import pytest

from harness.backends.constrain import PrefixMatcher
from harness.game.prompts import DECISION_PATTERN

VOCAB = [" Bet", " Stop", "Bet", " $", "$", "1", "12", "0", "x", " ", "Stop", "St", "op", "", " bet", "!"]
EOS = [99]


def ids(m: PrefixMatcher, *pieces: str) -> list[int]:
    return [m.vocab.index(p) for p in pieces]


def pieces(m: PrefixMatcher, token_ids: list[int]) -> set[str]:
    return {m.vocab[i] if i < len(m.vocab) else "<eos>" for i in token_ids}


def test_first_step_allows_only_the_starts_of_a_decision():
    m = PrefixMatcher(DECISION_PATTERN, VOCAB)
    assert pieces(m, m.next_tokens([], EOS)) == {" Bet", " Stop", "Bet", " ", "Stop", "St"}


def test_amount_digits_then_the_end():
    m = PrefixMatcher(DECISION_PATTERN, VOCAB)
    after_dollar = ids(m, " Bet", " $")
    assert pieces(m, m.next_tokens(after_dollar, EOS)) == {"1", "12", "0"}  # no end: an amount is needed
    after_digit = ids(m, " Bet", " $", "12")
    assert pieces(m, m.next_tokens(after_digit, EOS)) == {"1", "12", "0", "<eos>"}
    four = ids(m, " Bet", " $", "12", "12")
    assert pieces(m, m.next_tokens(four, EOS)) == {"<eos>"}  # at most four digits


def test_stop_completes_and_only_the_end_follows():
    m = PrefixMatcher(DECISION_PATTERN, VOCAB)
    assert pieces(m, m.next_tokens(ids(m, "St"), EOS)) == {"op"}
    assert pieces(m, m.next_tokens(ids(m, " Stop"), EOS)) == {"<eos>"}


def test_a_dead_text_can_only_end():
    m = PrefixMatcher(DECISION_PATTERN, VOCAB)
    assert m.next_tokens(ids(m, "x"), EOS) == EOS


def test_allowed_sets_are_cached_per_text():
    m = PrefixMatcher(DECISION_PATTERN, VOCAB)
    first = m.allowed(" Bet")
    assert m.allowed(" Bet") is first


@pytest.mark.model
def test_real_tokenizer_pieces_only_build_decisions(smollm2_path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2_path, local_files_only=True)
    vocab = [tok.decode([i], skip_special_tokens=True) for i in range(len(tok))]
    m = PrefixMatcher(DECISION_PATTERN, vocab)
    start = m.allowed("")
    assert tok.encode(" Bet")[0] in start and tok.encode(" Stop")[0] in start
    assert all(re.fullmatch(r" ?(B|Be|Bet|S|St|Sto|Stop|Bet |Bet \$)?", vocab[i]) for i in start)
    digits = m.allowed(" Bet $")
    assert digits and all(vocab[i].isdigit() for i in digits)
