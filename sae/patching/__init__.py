"""Activation patching ("Exp2"): test prompts, the feature edit during generation, trials,
statistics and the `harness sae patch` command."""
