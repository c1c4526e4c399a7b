"""Training an SAE per layer on a run's residual stream (`harness sae train`).

`config` (the settings and the metrics written beside each SAE), `data` (the activation buffer of
every decision prompt, split by game), `trainable` (the SAE being optimised and its SAELens export),
`trainer` (the steps, checkpoints and resume rule). The submodules import torch: this package's
`__init__` imports nothing, so `harness --help` stays instant.
"""
