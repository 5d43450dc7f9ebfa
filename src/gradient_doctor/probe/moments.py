"""Exact pooling of (count, sum, squared deviations) from many parts into per-layer moments (Chan et al.).

    >>> n, total, m2 = pool(layer, count, total, shift, squares, n_layers)
    >>> mean, var = total / n, m2 / n  # of every entry of every part of each layer

A part is one forward call of a layer, or one process's already pooled values of a layer: `count`
entries summing to `total`, whose squared deviations about `shift` sum to `squares`. Parts with
`count` 0 contribute nothing (their `shift` must be finite); a layer with no entries gets m2 = 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def pool(layer: Tensor, count: Tensor, total: Tensor, shift: Tensor, squares: Tensor, n_layers: int
         ) -> tuple[Tensor, Tensor, Tensor]:
    """Float64 per-layer (entries, sum, squared deviations about the layer's mean), vectorised."""

    def per_layer(values: Tensor) -> Tensor:
        return torch.zeros(n_layers, dtype=torch.float64, device=values.device).index_add_(0, layer, values)

    n = per_layer(count)
    summed = per_layer(total)
    mean = torch.where(n > 0, summed / n, 0.0)
    # squares about each part's shift, moved to the layer's mean: + count·(shift − mean)²
    m2 = per_layer(squares + count * (shift - mean[layer]).square())
    return n, summed, m2
