"""Throughput: the same N games x R rounds on the same model, three ways, side by side.

  (a) the original study's way: HF `generate`, one request at a time, use_cache=False
  (b) the harness's transformers backend: all games in flight, batched `generate` with KV cache
  (c) the harness's vllm backend: all games in flight, vLLM continuous batching

Every way gets the identical request list: game g, round r is the harness's own prompt
(build_prompt + the chat template) for a game of condition g % 128 after r scripted bets, with a
fixed max-token budget and a per-request seed. Rounds of a game are sequential (each awaits the
previous, as in the runner); games run concurrently in (b) and (c), one request at a time in (a).

    python bench/throughput.py --games 64 --rounds 3 --max-tokens 32       # CPU, embedded SmolLM2
    python bench/throughput.py --model DIR --device cuda --games 3200 --rounds 5 --max-tokens 128
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def build_games(formatter, n_games: int, rounds: int, max_tokens: int, seed: int, temperature: float):
    """Per game, its R requests (prompt ids fixed in advance, so all ways do the same work)."""
    from harness.backends.base import GenerationRequest
    from harness.game.conditions import grid
    from harness.game.prompts import build_prompt
    from harness.game.rules import GameRules, clamp_bet, new_game, play_round
    from harness.seeds import derive_seed

    rules = GameRules()
    conditions = grid("128")
    games = []
    for g in range(n_games):
        cond = conditions[g % len(conditions)]
        state = new_game(rules)
        rng = random.Random(derive_seed(seed, "bench", g))
        if cond.first_result is not None:
            play_round(state, rules.fixed_bet, rules, rng, forced_win=cond.first_result == "W")
        requests = []
        for r in range(rounds):
            rendered = formatter.render(build_prompt(state, cond, rules, formatter.style))
            requests.append(GenerationRequest(
                request_id=f"g{g}-r{r}", prompt=rendered, prompt_token_ids=formatter.encode(rendered),
                seed=derive_seed(seed, g, r), temperature=temperature, max_tokens=max_tokens,
            ))
            if not state.finished:
                play_round(state, clamp_bet(None, bet_type=cond.bet_type, balance=state.balance, rules=rules),
                           rules, rng)
        games.append(requests)
    return games


def summarise(name: str, requests: int, tokens: int, wall: float, start_s: float, **extra) -> dict:
    row = dict(way=name, requests=requests, generated_tokens=tokens, wall_s=round(wall, 3),
               start_s=round(start_s, 2), requests_per_s=requests / wall, tokens_per_s=tokens / wall, **extra)
    print(f"  {name}: {requests} requests, {tokens} tokens in {wall:.1f} s -> "
          f"{row['requests_per_s']:.2f} requests/s, {row['tokens_per_s']:.1f} tokens/s "
          f"(start {start_s:.1f} s)",
          flush=True)
    return row


def run_original(model_path: str, device: str, dtype: str, requests: list) -> dict:
    """(a) One request at a time, no KV cache: every new token re-reads the whole prompt."""
    import torch
    from transformers import AutoModelForCausalLM

    from harness.backends.devices import torch_dtype

    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype(dtype), local_files_only=True)
    model = model.to(device).eval()
    eos = model.generation_config.eos_token_id
    eos = set([eos] if isinstance(eos, int) else eos or [])
    start_s = time.perf_counter() - t0
    tokens = 0
    t0 = time.perf_counter()
    for req in requests:
        torch.manual_seed(req.seed % 2**63)
        ids = torch.tensor([req.prompt_token_ids], device=device)
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=req.temperature > 0,
                                 temperature=req.temperature or None, top_p=req.top_p,
                                 max_new_tokens=req.max_tokens, use_cache=False,
                                 pad_token_id=next(iter(eos), 0))
        new = out[0, ids.shape[1]:].tolist()
        tokens += next((i + 1 for i, t in enumerate(new) if t in eos), len(new))
    wall = time.perf_counter() - t0
    del model
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()  # (c) sizes its KV cache from the free GPU memory
    return summarise("a_original", len(requests), tokens, wall, start_s)


async def run_backend(name: str, backend, games: list) -> dict:
    """(b)/(c): every game a coroutine, its rounds in order, all games in flight at once."""
    t0 = time.perf_counter()
    await backend.start()
    start_s = time.perf_counter() - t0
    counts = {"requests": 0, "tokens": 0, "finish": {}}

    async def play(requests):
        for req in requests:
            res = await backend.generate(req)
            counts["requests"] += 1
            counts["tokens"] += res.completion_tokens
            counts["finish"][res.finish_reason] = counts["finish"].get(res.finish_reason, 0) + 1

    try:
        t0 = time.perf_counter()
        await asyncio.gather(*(play(g) for g in games))
        wall = time.perf_counter() - t0
        memory = backend.memory_stats()
    finally:
        await backend.shutdown()
    return summarise(name, counts["requests"], counts["tokens"], wall, start_s, finish=counts["finish"],
                     games=len(games), **memory)


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="embedded:smollm2-135m-instruct", help="model directory or embedded id")
    p.add_argument("--device", default="auto", help="cpu, cuda, auto")
    p.add_argument("--dtype", default=None, help="default: float32 on CPU, bfloat16 on GPU")
    p.add_argument("--games", type=int, default=64)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-tokens", type=int, default=32)
    p.add_argument("--temperature", type=float, default=0.7)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ways", default="a,b,c", help="comma-separated subset of a,b,c")
    p.add_argument("--original-requests", type=int, default=24,
                   help="(a) times only the first K requests (game by game): at one request at a time "
                   "without KV cache the full list takes hours; its rate is what is compared")
    p.add_argument("--transformers-games", type=int, default=None,
                   help="(b) plays only the first G games (default: all), rates are compared")
    p.add_argument("--max-batch-size", type=int, default=64, help="(b) requests per batch")
    p.add_argument("--max-num-seqs", type=int, default=None, help="(c) default: min(games, 256)")
    p.add_argument("--max-model-len", type=int, default=2048)
    p.add_argument("--gpu-memory-utilization", type=float, default=0.90)
    p.add_argument("--kv-gib", type=int, default=4, help="(c) on CPU: VLLM_CPU_KVCACHE_SPACE")
    p.add_argument("--out", default=None, help="JSON path (default bench/results/throughput-<time>.json)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from harness.backends.devices import default_dtype, resolve_device
    from harness.backends.transformers import TransformersBackend
    from harness.config import load_config
    from harness.run.worker_run import make_formatter

    device = resolve_device(args.device)
    dtype = args.dtype or default_dtype(device)
    ways = [w.strip() for w in args.ways.split(",") if w.strip()]
    config = load_config(None, {
        "model.path": args.model, "model.dtype": dtype, "model.name": Path(args.model).name,
        "backend.device": device, "backend.max_batch_size": args.max_batch_size,
        "backend.max_num_seqs": args.max_num_seqs or min(args.games, 256),
        "backend.max_model_len": args.max_model_len, "backend.cpu_kvcache_space_gib": args.kv_gib,
        "backend.gpu_memory_utilization": args.gpu_memory_utilization, "seed": args.seed,
    })
    from harness.backends.checkpoints import resolve_model_path

    model_path = resolve_model_path(config.model)
    formatter = make_formatter(config, model_path)
    games = build_games(formatter, args.games, args.rounds, args.max_tokens, args.seed, args.temperature)
    prompt_lens = [len(r.prompt_token_ids) for g in games for r in g]
    print(f"{args.games} games x {args.rounds} rounds, max {args.max_tokens} tokens, prompts "
          f"{min(prompt_lens)}-{max(prompt_lens)} tokens (mean {sum(prompt_lens) / len(prompt_lens):.0f}), "
          f"{device}/{dtype}, load {load_average()}", flush=True)
    rows = {}
    if "a" in ways:
        flat = [r for g in games for r in g][: args.original_requests]
        rows["a"] = run_original(model_path, device, dtype, flat)
    if "b" in ways:
        subset = games[: args.transformers_games or len(games)]
        rows["b"] = asyncio.run(run_backend("b_transformers",
                                            TransformersBackend(config, model_path, formatter), subset))
    if "c" in ways:
        from harness.backends.vllm import VLLMBackend

        rows["c"] = asyncio.run(run_backend("c_vllm", VLLMBackend(config, model_path, formatter), games))
    ratios = {f"{x}/{y}": rows[x]["tokens_per_s"] / rows[y]["tokens_per_s"]
              for x, y in (("b", "a"), ("c", "a"), ("c", "b")) if x in rows and y in rows}
    ratios.update({f"{x}/{y} requests": rows[x]["requests_per_s"] / rows[y]["requests_per_s"]
                   for x, y in (("b", "a"), ("c", "a"), ("c", "b")) if x in rows and y in rows})
    for key, value in ratios.items():
        print(f"  {key}: {value:.1f}x")
    result = dict(
        params=vars(args) | {"device": device, "dtype": dtype, "model_path": model_path},
        machine=dict(cpus=os.cpu_count(), platform=platform.platform(), load_after=load_average(),
                     gpu=torch.cuda.get_device_name(0) if device.startswith("cuda") else None),
        prompt_tokens=dict(
            min=min(prompt_lens), max=max(prompt_lens), mean=sum(prompt_lens) / len(prompt_lens)
        ),
        ways=rows, ratios=ratios, time=time.time(),
    )
    out = Path(args.out) if args.out else RESULTS / f"throughput-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
