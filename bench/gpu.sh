#!/usr/bin/env bash
# Throughput on one GPU at LLaMA-3.1-8B's shape, with no network: builds a random-weight model
# (hidden 4096, 32 layers, 32 heads, 8 KV heads, intermediate 14336, vocab 128256, bf16) in a temp
# directory with the embedded SmolLM2 tokenizer, padded with placeholder tokens to 128,256 ids so
# every id the random model samples decodes (tokenizer.json's BPE vocab gets placeholders); prompts are SmolLM2-tokenized (ids < 49,152). Then
# runs bench/throughput.py: (a) and (b) on samples, (c) on all games where vLLM is installed.
#
#   bash bench/gpu.sh                       # 3,200 games (128 x 25) x 5 rounds, 128 tokens each
#   GAMES=512 ROUNDS=3 bash bench/gpu.sh    # smaller
#   MODEL_DIR=/data/llama8b-random bash bench/gpu.sh   # keep the 16 GB model for reruns
set -euo pipefail
cd "$(dirname "$0")/.."
GAMES=${GAMES:-3200}
ROUNDS=${ROUNDS:-5}
MAX_TOKENS=${MAX_TOKENS:-128}
ORIGINAL_REQUESTS=${ORIGINAL_REQUESTS:-8}
TRANSFORMERS_GAMES=${TRANSFORMERS_GAMES:-256}
MAX_NUM_SEQS=${MAX_NUM_SEQS:-512}
MODEL_DIR=${MODEL_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/llama8b-random.XXXXXX")}
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

python - "$MODEL_DIR" <<'PY'
import json
import shutil
import sys
import time
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

from harness.backends.embedded import ensure_checkpoint

out = Path(sys.argv[1])
if (out / "config.json").is_file():
    print(f"reusing {out}")
    sys.exit(0)
t0 = time.time()
src = Path(ensure_checkpoint())
out.mkdir(parents=True, exist_ok=True)
vocab = 128256
for f in src.iterdir():  # tokenizer files and chat template, not the weights
    if f.suffix != ".safetensors" and f.name not in ("config.json", "generation_config.json"):
        shutil.copy(f, out / f.name)
tj = json.loads((src / "tokenizer.json").read_text())
ids = tj["model"]["vocab"]
for i in range(max(ids.values()) + 1, vocab):  # decodable placeholders; no merge ever produces them
    ids[f"<pad{i}>"] = i
(out / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False))
tok = AutoTokenizer.from_pretrained(str(out))
assert len(tok) == vocab, len(tok)
config = LlamaConfig(
    hidden_size=4096, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
    intermediate_size=14336, vocab_size=vocab, max_position_embeddings=8192, rope_theta=500000.0,
    rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
    eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
)
torch.manual_seed(0)
torch.set_default_dtype(torch.bfloat16)
with torch.device("cuda"):
    model = LlamaForCausalLM(config)
model.save_pretrained(out, safe_serialization=True)
tok.save_pretrained(out)
n = sum(p.numel() for p in model.parameters())
print(f"built {n / 1e9:.2f} B random parameters in {out} ({time.time() - t0:.0f} s)")
PY

WAYS=a,b
if python -c "import vllm" 2>/dev/null; then WAYS=a,b,c; else echo "vllm not installed: skipping (c)"; fi
mkdir -p bench/results
python bench/throughput.py --model "$MODEL_DIR" --device cuda --dtype bfloat16 \
  --games "$GAMES" --rounds "$ROUNDS" --max-tokens "$MAX_TOKENS" --ways "$WAYS" \
  --original-requests "$ORIGINAL_REQUESTS" --transformers-games "$TRANSFORMERS_GAMES" \
  --max-batch-size 64 --max-num-seqs "$MAX_NUM_SEQS" --max-model-len 4096 \
  --out "bench/results/gpu-llama8b-random-$(date +%Y%m%d-%H%M%S).json"
