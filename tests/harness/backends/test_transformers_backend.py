"""The transformers backend on the real embedded SmolLM2: batching, seeds, new tokens only."""

import asyncio

import pytest

from harness.backends.base import GenerationRequest
from harness.backends.formatter import PromptFormatter
from harness.backends.transformers import TransformersBackend
from harness.config import load_config
from harness.game.conditions import parse_condition_id
from harness.game.prompts import build_prompt
from harness.game.rules import GameRules, new_game

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def setup(smollm2_path):
    config = load_config(None, {"backend.device": "cpu", "backend.batch_wait_ms": 50})
    formatter = PromptFormatter.from_pretrained(smollm2_path, "chat")
    rules = GameRules()
    prompts = [
        formatter.render(build_prompt(new_game(rules), parse_condition_id(c), rules, "chat"))
        for c in ("fixed-none-BASE", "variable-none-GMHWP")
    ]
    return config, formatter, prompts, smollm2_path


def request(formatter, prompt, seed, i, **kw):
    return GenerationRequest(
        request_id=f"r{i}", prompt=prompt, prompt_token_ids=formatter.encode(prompt), seed=seed,
        max_tokens=kw.pop("max_tokens", 24), **kw,
    )


def test_batched_answers_depend_on_seed_not_on_batch(setup):
    config, formatter, prompts, path = setup

    async def go():
        async with TransformersBackend(config, path, formatter) as backend:
            reqs = [request(formatter, prompts[i % 2], seed=i // 2, i=i) for i in range(6)]
            batched = await asyncio.gather(*(backend.generate(r) for r in reqs))
            alone = [await backend.generate(r) for r in reqs[:3]]
            return backend, batched, alone

    backend, batched, alone = asyncio.run(go())
    assert backend.batches >= 2 and backend.batch_rows == 9  # the 6 shared one padded batch
    assert [r.text for r in alone] == [r.text for r in batched[:3]]
    assert len({r.text for r in batched}) > 1


def test_only_new_tokens_are_returned(setup):
    config, formatter, prompts, path = setup

    async def go():
        async with TransformersBackend(config, path, formatter) as backend:
            return await backend.generate(request(formatter, prompts[1], seed=3, i=0, max_tokens=20))

    result = asyncio.run(go())
    assert result.prompt_tokens == len(formatter.encode(prompts[1]))
    assert formatter.tokenizer.decode(result.token_ids, skip_special_tokens=True) == result.text
    assert "slot machine game" not in result.text  # no prompt echo from decoding the whole sequence
    assert result.finish_reason in ("stop", "length") and 0 < result.completion_tokens <= 20


def test_greedy_matches_plain_generate_and_stop_strings_cut(setup):
    import torch

    config, formatter, prompts, path = setup

    async def go():
        async with TransformersBackend(config, path, formatter) as backend:
            greedy = await backend.generate(
                request(formatter, prompts[0], seed=1, i=0, temperature=0.0, max_tokens=16)
            )
            cut = await backend.generate(
                request(formatter, prompts[0], seed=1, i=1, temperature=0.0, max_tokens=16,
                        stop=[greedy.text[5:9]])
            )
            return backend, greedy, cut

    backend, greedy, cut = asyncio.run(go())
    ids = torch.tensor([formatter.encode(prompts[0])])
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=16,
                         pad_token_id=formatter.tokenizer.pad_token_id)
    assert greedy.token_ids == out[0, ids.shape[1]:].tolist()[: len(greedy.token_ids)]
    assert cut.text == greedy.text[:5] and cut.finish_reason == "stop"


def test_decision_pattern_constrains_only_its_rows(setup):
    """Constrained rows (several seeds, after the `Final Decision:` cue) write only a decision;
    a free row in the same padded batch is left alone."""
    import re

    from harness.game.prompts import ANSWER_CUE, DECISION_MAX_TOKENS, DECISION_PATTERN

    config, formatter, prompts, path = setup
    cued = prompts[1] + ANSWER_CUE

    async def go():
        async with TransformersBackend(config, path, formatter) as backend:
            reqs = [request(formatter, cued, seed=s, i=s, max_tokens=DECISION_MAX_TOKENS,
                            decision_pattern=DECISION_PATTERN) for s in range(6)]
            reqs.append(request(formatter, prompts[1], seed=0, i=99, max_tokens=DECISION_MAX_TOKENS))
            return await asyncio.gather(*(backend.generate(r) for r in reqs))

    results = asyncio.run(go())
    for r in results[:-1]:
        assert re.fullmatch(DECISION_PATTERN, r.text), r.text
        assert r.finish_reason == "stop"  # ended by the end token once complete, not by the limit
    assert not re.fullmatch(DECISION_PATTERN, results[-1].text)
