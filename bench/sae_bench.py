"""SAE benchmarks: loading a LlamaScope-sized SAE, and feature extraction per 1,000 prompts.

    python bench/sae_bench.py load    [--device cpu|cuda] [--d-model 4096 --d-sae 32768]
    python bench/sae_bench.py extract --model smollm2 [--device cpu] [--prompts 64] [--layers 0-29]
    python bench/sae_bench.py extract --model llama8b --device cuda [--prompts 1000] [--layers 25-31]

`load` writes a random fp32 SAE in the LlamaScope layout (hyperparams.json +
checkpoints/final.safetensors, 1 GiB at 4096 x 32768), then times `sae.load` several times
(the first read may come from disk; the later ones from the page cache).
`extract` times `extract_features` (tokenize, one forward pass per batch for all layers, SAE
encode, group moments) on realistic game prompts: the real SmolLM2, or LLaMA-3.1-8B's shape with
random bf16 weights (GPU only). SAEs are random, d_sae = 8 x d_model unless --d-sae is given.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

LLAMA_8B = dict(
    hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, vocab_size=128256, rope_theta=500000.0, max_position_embeddings=8192,
)


def write_llamascope(folder: Path, d_model: int, d_sae: int) -> Path:
    from safetensors.torch import save_file

    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    hp = {"d_model": d_model, "d_sae": d_sae, "jump_relu_threshold": 0.5, "norm_activation": "dataset-wise",
          "dataset_average_activation_norm": {"in": 16.0, "out": 16.0}}
    (folder / "hyperparams.json").write_text(json.dumps(hp))
    g = torch.Generator().manual_seed(0)
    tensors = {
        "encoder.weight": torch.randn(d_sae, d_model, generator=g) / d_model**0.5,
        "encoder.bias": torch.zeros(d_sae),
        "decoder.weight": torch.randn(d_model, d_sae, generator=g) / d_sae**0.5,
        "decoder.bias": torch.zeros(d_model),
    }
    save_file(tensors, str(folder / "checkpoints" / "final.safetensors"))
    return folder


def bench_load(args) -> dict:
    import sae

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        t0 = time.perf_counter()
        folder = write_llamascope(Path(tmp) / "L25R", args.d_model, args.d_sae)
        size = (folder / "checkpoints" / "final.safetensors").stat().st_size
        write_s = time.perf_counter() - t0
        times, ready = [], []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            s = sae.load(folder, device=args.device, dtype=args.dtype)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
            # on CPU in the file's dtype the tensors are memory-mapped: count touching every weight too
            s.decode(s.encode(torch.randn(1, args.d_model)))
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            ready.append(time.perf_counter() - t0)
            del s
    return {"bench": "load", "device": args.device, "dtype": args.dtype, "file_gib": round(size / 2**30, 3),
            "write_s": round(write_s, 2), "load_s": [round(t, 3) for t in times],
            "warm_median_s": round(statistics.median(times[1:] or times), 3),
            "load_and_first_encode_s": [round(t, 3) for t in ready]}


def game_prompts(formatter, n: int, seed: int = 0) -> list[str]:
    """n realistic chat-rendered decision prompts: random conditions, histories and balances."""
    from harness.game.conditions import grid
    from harness.game.prompts import build_prompt
    from harness.game.rules import GameRules, new_game, play_round

    rng, rules, conditions = random.Random(seed), GameRules(), grid("128")
    prompts = []
    while len(prompts) < n:
        cond, state = rng.choice(conditions), new_game(rules)
        for _ in range(rng.randint(0, 12)):
            if state.finished:
                break
            play_round(state, min(10, state.balance), rules, rng)
        if not state.finished:
            prompts.append(formatter.render(build_prompt(state, cond, rules, "chat")))
    return prompts


def load_model(args):
    from harness.backends.embedded import ensure_checkpoint
    from harness.backends.formatter import PromptFormatter
    from harness.config import ModelConfig
    from sae.reader import ResidualReader

    smol = str(ensure_checkpoint())
    if args.model == "smollm2":
        cfg = ModelConfig(name="smollm2", path=smol, style="chat", dtype=args.model_dtype)
        return ResidualReader(cfg, device=args.device, batch_size=args.batch_size)
    from transformers import LlamaConfig, LlamaModel

    if not args.device.startswith("cuda"):
        raise SystemExit("--model llama8b needs --device cuda (16 GB of bf16 weights)")
    torch.set_default_dtype(torch.bfloat16)
    with torch.device(args.device):
        model = LlamaModel(LlamaConfig(**LLAMA_8B))  # random weights; LLaMA-3.1-8B's shapes
    torch.set_default_dtype(torch.float32)
    formatter = PromptFormatter.from_pretrained(smol, "chat")  # its token ids fit LLaMA's vocabulary
    return ResidualReader.from_model(model, formatter, batch_size=args.batch_size)


def bench_extract(args) -> dict:
    from sae.features import extract_features
    from sae.model import SAE, SAEConfig
    from sae.spec import parse_layers
    from tests.helpers import make_game

    t0 = time.perf_counter()
    reader = load_model(args)
    model_s = time.perf_counter() - t0
    layers = parse_layers(args.layers)
    d_sae = args.d_sae or 8 * reader.d_model
    g = torch.Generator(device=reader.device).manual_seed(0)
    saes = {}
    for L in layers:
        cfg = SAEConfig(layout="memory", path=f"random-L{L}", d_model=reader.d_model, d_sae=d_sae)
        w_enc = torch.randn(reader.d_model, d_sae, generator=g, device=reader.device) / reader.d_model**0.5
        saes[L] = SAE(cfg, w_enc, w_enc.T, torch.zeros(d_sae, device=reader.device),
                      torch.zeros(reader.d_model, device=reader.device), 0.05)
    prompts = game_prompts(reader.formatter, args.prompts)
    games = [make_game([(10, False)] * 10 if i % 2 else [(10, True)], repetition=i, prompt=p)
             for i, p in enumerate(prompts)]
    tokens = [len(reader.encode(p)) for p in prompts]
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    t0, c0 = time.perf_counter(), time.process_time()
    extract_features(games, saes, reader)
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"bench": "extract", "model": args.model, "device": args.device, "layers": len(layers),
           "d_sae": d_sae, "prompts": len(prompts), "mean_tokens": round(statistics.mean(tokens), 1),
           "batch_size": args.batch_size,
           "model_load_s": round(model_s, 1), "wall_s": round(wall, 2),
           "s_per_1000_prompts": round(wall / len(prompts) * 1000, 1),
           "cpu_s_per_1000_prompts": round(cpu / len(prompts) * 1000, 1), "threads": torch.get_num_threads()}
    if args.device.startswith("cuda"):
        out["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    ld = sub.add_parser("load")
    ld.add_argument("--device", default="cpu")
    ld.add_argument("--dtype", default="float32")
    ld.add_argument("--d-model", type=int, default=4096)
    ld.add_argument("--d-sae", type=int, default=32768)
    ld.add_argument("--repeat", type=int, default=4)
    ld.add_argument("--tmp", default=None, help="Where to write the SAE (default: the system temp dir).")
    ex = sub.add_parser("extract")
    ex.add_argument("--model", choices=["smollm2", "llama8b"], default="smollm2")
    ex.add_argument("--device", default="cpu")
    ex.add_argument("--model-dtype", default="float32", help="smollm2 only; llama8b is bf16.")
    ex.add_argument("--prompts", type=int, default=64)
    ex.add_argument("--batch-size", type=int, default=16)
    ex.add_argument("--layers", default=None, help="Default: 0-29 (smollm2), 25-31 (llama8b).")
    ex.add_argument("--d-sae", type=int, default=None)
    args = p.parse_args()
    if args.what == "extract" and args.layers is None:
        args.layers = "0-29" if args.model == "smollm2" else "25-31"
    print(json.dumps(bench_load(args) if args.what == "load" else bench_extract(args)))


if __name__ == "__main__":
    main()
