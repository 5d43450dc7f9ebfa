"""Per-layer reductions of per-parameter values, where a parameter may belong to several layers.

    >>> rollup = Rollup([(0, 0), (1, 0), (1, 1)], n_layers=2, device="cpu")  # (param, layer) pairs
    >>> rollup.sum(torch.tensor([1.0, 2.0], dtype=torch.float64))
    tensor([3., 2.], dtype=torch.float64)
"""

from __future__ import annotations

import torch
from torch import Tensor


class Rollup:
    """Sums, maxima and counts of per-parameter values over each layer's parameters."""

    def __init__(self, pairs: list[tuple[int, int]], n_layers: int, device: torch.device | str):
        self.n_layers = n_layers
        self.pairs = tuple(pairs)  # (param, layer), for sums taken on the host (gradients.norm_blocks_on_host)
        self.param_index = torch.tensor([p for p, _ in pairs], dtype=torch.long, device=device)
        self.layer_index = torch.tensor([layer for _, layer in pairs], dtype=torch.long, device=device)
        #: layers that own at least one parameter (False for parameter-free activation modules)
        self.owns = torch.zeros(n_layers, dtype=torch.bool, device=device)
        self.owns[self.layer_index] = True
        #: the same on the host, as a set of layer indices
        self.owned_layers = frozenset(layer for _, layer in pairs)

    def sum(self, values: Tensor) -> Tensor:
        """Sum of `values` (float64, one per parameter; or rows × parameters) over each layer's
        parameters: [layers] (or rows × layers)."""
        out = torch.zeros(values.shape[:-1] + (self.n_layers,), dtype=values.dtype, device=values.device)
        return out.index_add_(-1, self.layer_index, values[..., self.param_index])

    def amax(self, values: Tensor) -> Tensor:
        """Maximum of `values` over each layer's parameters (-inf for a layer with none)."""
        out = torch.full((self.n_layers,), -torch.inf, dtype=values.dtype, device=values.device)
        return out.scatter_reduce_(0, self.layer_index, values[self.param_index], "amax")
