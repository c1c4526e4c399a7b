"""The prompt text the embedded chat model really sees: SmolLM2's template adds its own system
prompt when the config gives none (docs/backends.md says so), and a configured one replaces it."""

from harness.backends.formatter import PromptFormatter

SMOLLM_SYSTEM = ("<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face"
                 "<|im_end|>\n")


def test_smollm2_adds_its_own_system_prompt_when_none_is_configured(smollm2_path):
    rendered = PromptFormatter.from_pretrained(smollm2_path, "chat").render("Bet or stop?")
    assert rendered == SMOLLM_SYSTEM + "<|im_start|>user\nBet or stop?<|im_end|>\n<|im_start|>assistant\n"


def test_a_configured_system_prompt_replaces_it(smollm2_path):
    rendered = PromptFormatter.from_pretrained(smollm2_path, "chat", "Be brief.").render("Bet or stop?")
    assert rendered.startswith("<|im_start|>system\nBe brief.<|im_end|>\n") and "SmolLM" not in rendered


def test_base_style_is_the_text_as_it_is(smollm2_path):
    formatter = PromptFormatter.from_pretrained(smollm2_path, "base")
    assert formatter.render("Final Decision:") == "Final Decision:"
