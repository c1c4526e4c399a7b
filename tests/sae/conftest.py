import pytest


@pytest.fixture(scope="session")
def smollm2_reader(smollm2_path):
    """The embedded SmolLM2 (30 blocks, d_model 576) loaded once for reading residuals, in float32."""
    from harness.config import ModelConfig
    from sae.reader import ResidualReader

    cfg = ModelConfig(name="smollm2", path=smollm2_path, style="chat", dtype="float32")
    return ResidualReader(cfg, device="cpu", batch_size=4)


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module: on a shared 2-core machine two spinning OpenMP threads ran
    small matmuls 20x slower than one. Restored afterwards."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
