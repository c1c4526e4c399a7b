import pytest


@pytest.fixture(scope="session")
def smollm2_reader(smollm2_path):
    """The embedded SmolLM2 (30 blocks, d_model 576) loaded once for reading residuals, in float32."""
    from harness.config import ModelConfig
    from sae.reader import ResidualReader

    cfg = ModelConfig(name="smollm2", path=smollm2_path, style="chat", dtype="float32")
    return ResidualReader(cfg, device="cpu", batch_size=4)
