"""A run of hand-built games played on the real SmolLM2's prompts, for the SAE commands' tests."""

import pytest

from harness.backends.formatter import PromptFormatter
from tests.sae.builders import GAME_PLANS, played_game, write_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, smollm2_path):
    formatter = PromptFormatter.from_pretrained(smollm2_path, "chat")
    games = [played_game(formatter, bets, repetition=i) for i, (bets, _) in enumerate(GAME_PLANS)]
    assert [g.outcome for g in games] == [outcome for _, outcome in GAME_PLANS]
    assert games[0].rounds[-1].prompt.startswith("<|im_start|>")
    assert "Current balance: $10\n" in games[0].rounds[-1].prompt
    return write_run(tmp_path_factory.mktemp("run"), games, smollm2_path)
