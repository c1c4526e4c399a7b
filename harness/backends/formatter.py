"""The prompt formatter that every backend shares.

The harness applies the chat template and tokenizes itself, so every engine sees the same
token ids for the same prompt (no engine adds a second BOS, none cuts the answer by the
prompt's length: backends return only the new tokens).
"""

from __future__ import annotations

from harness.errors import ConfigError


class PromptFormatter:
    """Turns the game's prompt text into what the model sees, and into token ids."""

    def __init__(self, tokenizer, style: str, system_prompt: str | None = None):
        """`tokenizer` None: plain text, no template (the scripted backend)."""
        self.tokenizer = tokenizer
        self.style = style
        self.system_prompt = system_prompt
        if tokenizer is not None and style == "chat" and not getattr(tokenizer, "chat_template", None):
            raise ConfigError(
                "model.style: 'chat' but the tokenizer has no chat template; use style = 'base'"
            )

    @classmethod
    def from_pretrained(cls, path: str, style: str, system_prompt: str | None = None) -> PromptFormatter:
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(path, local_files_only=True), style, system_prompt)

    def render(self, prompt_text: str) -> str:
        """The full text the model sees: chat template applied for chat models."""
        if self.style == "base" or self.tokenizer is None:
            return prompt_text
        messages = [{"role": "user", "content": prompt_text}]
        if self.system_prompt:
            messages.insert(0, {"role": "system", "content": self.system_prompt})
        return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)

    def encode(self, rendered: str) -> list[int] | None:
        if self.tokenizer is None:
            return None
        # A chat template writes its own BOS; a base prompt gets the tokenizer's.
        return list(self.tokenizer(rendered, add_special_tokens=self.style == "base")["input_ids"])
