"""Console output: every outcome is counted, in one format."""

from harness.commands.console import format_outcomes
from harness.records import OUTCOMES


def test_format_outcomes_lists_every_outcome_zeros_included():
    text = format_outcomes({"bankrupt": 2, "no_decision": 1})
    assert text == "bankrupt 2 stopped 0 max_rounds 0 no_decision 1 invalid 0"
    assert [text.split()[2 * i] for i in range(len(OUTCOMES))] == list(OUTCOMES)
