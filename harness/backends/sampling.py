"""Seeded sampling inside a batch: one random stream per row.

`generate` has one global RNG, so a row's sample would depend on its batch neighbours. Instead
`PerRowSampler`, a logits processor, draws each row's token from that row's own seeded stream
(temperature, then top-p) and hands `generate` a one-hot score row, which greedy decoding then
picks. A row's answer therefore depends on its seed, not on which other rows shared its batch
(up to float rounding from padding). Used by the transformers backend and by SAE patching.
"""

from __future__ import annotations

import random


class PerRowSampler:
    """Temperature / top-p sampling, one seeded stream per row, batched on the device."""

    def __init__(self, seeds: list[int], temperatures: list[float], top_ps: list[float]):
        self.streams = [random.Random(s) for s in seeds]
        self.temperatures = temperatures
        self.top_ps = top_ps

    def __call__(self, input_ids, scores):
        import torch

        scores = scores.float()
        batch, _ = scores.shape
        temps = torch.tensor(self.temperatures, device=scores.device).clamp_min(1e-6)[:, None]
        probs = torch.softmax(scores / temps, dim=-1)
        u = torch.tensor([s.random() for s in self.streams], device=scores.device, dtype=probs.dtype)
        if all(p >= 1.0 for p in self.top_ps):  # no nucleus: skip the vocabulary sort
            cdf = probs.cumsum(dim=-1)
            chosen = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).clamp_max(cdf.shape[1] - 1).squeeze(1)
        else:
            sorted_p, order = probs.sort(dim=-1, descending=True)
            cdf = sorted_p.cumsum(dim=-1)
            top_p = torch.tensor(self.top_ps, device=scores.device)[:, None]
            sorted_p = sorted_p.masked_fill((cdf - sorted_p) >= top_p, 0.0)  # keeps at least one token
            cdf = sorted_p.cumsum(dim=-1)
            pick = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).clamp_max(cdf.shape[1] - 1)
            chosen = order.gather(1, pick).squeeze(1)
        greedy = torch.tensor([t == 0 for t in self.temperatures], device=scores.device)
        chosen = torch.where(greedy, scores.argmax(dim=-1), chosen)
        out = torch.full_like(scores, float("-inf"))
        out[torch.arange(batch, device=scores.device), chosen] = 0.0
        return out
