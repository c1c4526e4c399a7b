"""Read or edit the residual stream after chosen blocks of a transformers decoder, in one forward pass.

"Layer L" is always the output of block L, i.e. `output_hidden_states[L + 1]` (index 0 is the
embeddings). The authors' scripts mixed `hidden_states[L]` and `hidden_states[L + 1]`; here the
hook sits on the block itself, so there is no index to get wrong. One exception to the equality,
by transformers' design: the *last* entry of `output_hidden_states` has the final norm applied,
while the hook (like TransformerLens' `hook_resid_post` and the SAEs trained on it) sees the raw
residual.

Hooks exist only inside the context managers and are removed in `finally`, even when the forward
pass raises (as `StopForward` does on purpose, to skip the blocks after the last one needed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch

Select = Callable[[torch.Tensor], torch.Tensor]
Edit = Callable[[torch.Tensor], torch.Tensor]


class StopForward(Exception):
    """Raised by a capture hook after the deepest requested block, to skip the rest of the model."""


def decoder_blocks(model: torch.nn.Module) -> torch.nn.ModuleList:
    """The list of decoder blocks of a LLaMA / Gemma-2 / SmolLM2-style model (CausalLM or base)."""
    for path in ("model.layers", "layers", "model.language_model.layers", "language_model.model.layers"):
        obj: Any = model
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
            if obj is None:
                break
        if isinstance(obj, torch.nn.ModuleList):
            return obj
    raise TypeError(f"{type(model).__name__}: cannot find its decoder blocks (expected model.layers)")


def _hidden(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _check_layers(blocks: torch.nn.ModuleList, layers: Iterable[int]) -> list[int]:
    layers = sorted(set(layers))
    bad = [L for L in layers if not 0 <= L < len(blocks)]
    if bad:
        from harness.errors import ConfigError

        raise ConfigError(f"--layers: {bad} out of range; the model has blocks 0..{len(blocks) - 1}")
    return layers


@contextmanager
def capture_residual(
    model: torch.nn.Module,
    layers: Iterable[int],
    select: Select | None = None,
    stop_after_last: bool = False,
) -> Iterator[dict[int, torch.Tensor]]:
    """Yield a dict that each forward pass fills with {layer: residual after block `layer`}.

    `select` maps the (batch, seq, d_model) output to what is kept (e.g. the last position), so
    full sequences need not stay in memory. With `stop_after_last`, the deepest hook raises
    `StopForward` once it has stored its value; the caller catches it (see `reader.py`).
    """
    blocks = decoder_blocks(model)
    layers = _check_layers(blocks, layers)
    captured: dict[int, torch.Tensor] = {}
    last = layers[-1] if layers else None

    def make_hook(layer: int):
        def hook(_module, _inputs, output):
            h = _hidden(output)
            captured[layer] = (select(h) if select else h).detach()
            if stop_after_last and layer == last:
                raise StopForward

        return hook

    handles = [blocks[L].register_forward_hook(make_hook(L)) for L in layers]
    try:
        yield captured
    finally:
        for h in handles:
            h.remove()


@contextmanager
def edit_residual(model: torch.nn.Module, edits: Mapping[int, Edit]) -> Iterator[None]:
    """Replace the output of block L by `edits[L](output)` during every forward pass in the block.

    The edit gets and returns the (batch, seq, d_model) residual; it is the one place where a
    patch (issue 6) changes the model. Works under `generate` too (each step is a forward pass).
    """
    blocks = decoder_blocks(model)
    _check_layers(blocks, edits)

    def make_hook(fn: Edit):
        def hook(_module, _inputs, output):
            if isinstance(output, tuple):
                return (fn(output[0]), *output[1:])
            return fn(output)

        return hook

    handles = [blocks[L].register_forward_hook(make_hook(fn)) for L, fn in edits.items()]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def last_position(h: torch.Tensor) -> torch.Tensor:
    """(batch, seq, d) -> (batch, d) at the last position (prompts are left-padded)."""
    return h[:, -1, :]
