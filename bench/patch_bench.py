"""Seconds per patched feature: `run_pass` on one or more features, 6 conditions x T trials.

    python bench/patch_bench.py --model smollm2 --device cpu --trials 10 --max-new-tokens 16
    python bench/patch_bench.py --model llama8b --device cuda --trials 50 --max-new-tokens 100 --features 4
    python bench/patch_bench.py --model tiny8b --device cpu   # llama8b's code path on a 2-layer model

`smollm2` is the embedded SmolLM2-135M-Instruct with a random 8x SAE; `llama8b` LLaMA-3.1-8B's
shape (32 layers, d_model 4096, GQA 32/8 heads, vocab 128,256) with random bf16 weights and a
random 32,768-feature SAE at layer 25 (GPU only; the prompt is the real chat-rendered test
prompt in SmolLM2's tokenizer, about the length LLaMA's gives). Random weights never emit EOS, so
every trial runs the full --max-new-tokens: an upper bound for real answers of that length.

Reported: the baseline (2 prompts x T, shared by the pass), the time per feature (4 patched
conditions x T; features of a layer share batches), and per feature with the baseline included
(the 6 conditions x T of one feature). Fewer trials than 50 are scaled linearly to 50
(`*_50_s`): batching makes the real cost grow more slowly than that, so it overstates.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.backends.devices import default_dtype, torch_dtype  # noqa: E402
from harness.backends.formatter import PromptFormatter  # noqa: E402
from sae.model import SAE, SAEConfig  # noqa: E402
from sae.patching.generate import Generator  # noqa: E402
from sae.patching.prompts import build_test_prompts  # noqa: E402
from sae.patching.trials import PatchSettings, read_lines, run_pass  # noqa: E402

SHAPES = {
    "llama8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                    num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0),
    "tiny8b": dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=8,
                   num_key_value_heads=2, vocab_size=128256),
}


def random_sae(d_model: int, d_sae: int, device: str, dtype: torch.dtype, seed: int = 0) -> SAE:
    g = torch.Generator(device="cpu").manual_seed(seed)
    w = {
        "W_enc": torch.randn(d_model, d_sae, generator=g) / d_model**0.5,
        "W_dec": torch.randn(d_sae, d_model, generator=g) / d_sae**0.5,
        "b_enc": torch.zeros(d_sae), "b_dec": torch.zeros(d_model), "threshold": torch.full((d_sae,), 0.05),
    }
    cfg = SAEConfig(layout="memory", path="random", d_model=d_model, d_sae=d_sae)
    return SAE(cfg, **{k: v.to(device=device, dtype=dtype) for k, v in w.items()})


def build(args) -> tuple[Generator, int]:
    from harness.backends.embedded import ensure_checkpoint

    path = str(ensure_checkpoint())
    options = dict(max_new_tokens=args.max_new_tokens, temperature=0.7)
    if args.model == "smollm2":
        from harness.config import ModelConfig

        cfg = ModelConfig(
            name="SmolLM2-135M-Instruct", path=path, style="chat", dtype=args.dtype or "float32"
        )
        return Generator.load(cfg, device=args.device, **options), 15
    from transformers import LlamaConfig, LlamaForCausalLM

    dtype = torch_dtype(args.dtype or default_dtype(args.device))
    torch.manual_seed(0)
    torch.set_default_dtype(dtype)  # built in the target dtype on the target device: no fp32 copy
    with torch.device(args.device):
        lm = LlamaForCausalLM(LlamaConfig(**SHAPES[args.model])).eval()
    torch.set_default_dtype(torch.float32)
    lm.generation_config.eos_token_id = None  # random weights: every trial runs to max_new_tokens
    formatter = PromptFormatter.from_pretrained(path, "chat")
    return (
        Generator.from_model(lm, formatter, "chat", **options),
        min(25, SHAPES[args.model]["num_hidden_layers"] - 1),
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=["smollm2", "llama8b", "tiny8b"], default="smollm2")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype")
    ap.add_argument("--trials", type=int, default=10)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument(
        "--features", type=int, default=2, help="Features of one layer to patch after the baseline."
    )
    ap.add_argument("--batch-size", type=int, default=400, help="Trials per generate call.")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: torch's).")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    t0 = time.perf_counter()
    generator, layer = build(args)
    load_s = time.perf_counter() - t0
    d_model = int(generator.model.config.hidden_size)
    sae = random_sae(d_model, 8 * d_model, generator.device, torch_dtype(default_dtype(args.device)))
    prompts = build_test_prompts(generator.formatter, "chat")
    prompt_tokens = {k: len(generator.formatter.encode(p.rendered)) for k, p in prompts.items()}
    feats = [{"layer": layer, "feature": f, "target_safe": 0.0, "target_risky": 4.0, "direction": "risky"}
             for f in range(args.features)]
    from sae.patching.generate import Row

    generator.generate([Row("safe", 0)], generator.formatter.encode(prompts["safe"].rendered), {})  # warm-up
    settings = PatchSettings(trials=args.trials, max_new_tokens=args.max_new_tokens)
    with tempfile.TemporaryDirectory() as out:
        t1, c1 = time.perf_counter(), time.process_time()
        run_pass(generator, prompts, feats, lambda L: sae, settings, Path(out), batch_size=args.batch_size)
        wall, cpu = time.perf_counter() - t1, time.process_time() - c1
        lines = read_lines(Path(out) / "patch_trials.jsonl")
    baseline = lines[0].wall_s
    per_feature = sum(u.wall_s for u in lines[1:]) / args.features
    scale = 50 / args.trials
    result = {
        "model": args.model, "device": args.device, "trials": args.trials,
        "max_new_tokens": args.max_new_tokens, "features": args.features, "batch_size": args.batch_size,
        "threads": torch.get_num_threads(), "prompt_tokens": prompt_tokens,
        "load_s": round(load_s, 2), "pass_wall_s": round(wall, 2), "pass_cpu_s": round(cpu, 2),
        "baseline_s": round(baseline, 2),
        "per_feature_s": round(per_feature, 2),
        "per_feature_with_baseline_s": round(per_feature + baseline, 2),
        "per_feature_50_s": round(per_feature * scale, 2),
        "per_feature_with_baseline_50_s": round((per_feature + baseline) * scale, 2),
    }
    if args.device.startswith("cuda"):
        result["gpu"] = torch.cuda.get_device_name()
        result["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
