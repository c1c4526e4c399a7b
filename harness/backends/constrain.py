"""Constrained decoding without an engine's help: which tokens keep an answer a prefix of a
pattern (docs/protocol.md §1, "Parsing", points 4 and 7). Pure: token pieces in, token ids out.

The transformers backend turns `allowed` into a logits mask at every step. A piece is allowed
when the answer plus the piece can still grow into a full match (the `regex` module's partial
matching); the end token is allowed once the answer is a full match. Answers pass through few
distinct texts (" Bet", " Bet $", " Bet $2", ...), so each text's allowed set is computed once
and cached; a first-character screen keeps that computation to a few thousand regex calls.
"""

from __future__ import annotations

from collections.abc import Sequence

import regex


class PrefixMatcher:
    """The tokens of `vocab` (one decoded piece per token id) that keep text a prefix of `pattern`."""

    def __init__(self, pattern: str, vocab: Sequence[str]):
        self.pattern = regex.compile(pattern)
        self.vocab = list(vocab)
        self._by_first: dict[str, list[int]] = {}
        for token_id, piece in enumerate(self.vocab):
            if piece:  # special tokens decode to "": never part of an answer
                self._by_first.setdefault(piece[0], []).append(token_id)
        self._cache: dict[str, list[int]] = {}

    def viable(self, text: str) -> bool:
        """Whether `text` is a full match or can still become one."""
        return self.pattern.fullmatch(text, partial=True) is not None

    def complete(self, text: str) -> bool:
        """Whether `text` is a full match (the answer may end here)."""
        return self.pattern.fullmatch(text) is not None

    def allowed(self, text: str) -> list[int]:
        """Token ids whose piece keeps `text` viable (sorted; cached per text)."""
        if text not in self._cache:
            out: list[int] = []
            for first, ids in self._by_first.items():
                if not self.viable(text + first):
                    continue
                out += [i for i in ids if self.viable(text + self.vocab[i])]
            self._cache[text] = sorted(out)
        return self._cache[text]

    def text_of(self, token_ids: Sequence[int]) -> str:
        """The answer so far, from its token ids (pieces concatenated)."""
        return "".join(self.vocab[t] if 0 <= t < len(self.vocab) else "\ufffd" for t in token_ids)

    def next_tokens(self, token_ids: Sequence[int], eos_ids: Sequence[int]) -> list[int]:
        """What may come after `token_ids`: the allowed pieces, plus the end tokens once the answer
        is complete (or when nothing else fits, so generation always ends)."""
        text = self.text_of(token_ids)
        if not self.viable(text):
            return list(eos_ids)
        allowed = self.allowed(text)
        if self.complete(text) or not allowed:
            allowed = allowed + list(eos_ids)
        return allowed
