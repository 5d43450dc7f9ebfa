"""Per-layer histograms of log10 |g| over the gradient's entries, on the gradients' device, without host syncs.

    >>> hist = gradient_histograms([p.grad for p in params], rollup)
    >>> hist.shape                    # layers × (zeros, non-finite, then BINS counts)
    torch.Size([n_layers, 102])
    >>> bin_edges()[:3]               # log10 |g| edges shared by every layer, step and run
    array([-40. , -39.5, -39. ])

The bins are fixed: half a decade wide from 1e-40 to 1e10 (100 bins), so histograms of any layer, step
or run line up. Why that range: float32 (and bfloat16) normal numbers stop at 1.2e-38, below which a
gradient has lost precision already (denormals reach 1.4e-45); typical gradient entries sit between
1e-10 and 1, vanishing ones far lower, and an entry above 1e10 is an explosion whatever its exact size.
Entries outside the range are counted in the first or last bin (|g| ≤ 10^-39.5 in the first, including
float32 denormals and tinier float64 values; |g| ≥ 10^9.5 in the last). Exact zeros (no log) and non-finite
entries (inf, NaN) are counted in two columns of their own, never in a bin. Half a decade resolves a
healthy layer's spread (a few decades) into several bins while one step of all layers stays small:
layers × 102 float64.

Each parameter's entries are binned by their bit patterns (see `_histogram`: a masked copy and a bin index
per entry, 2^24 entries at a time, so the transient memory is at most 128 MB, bfloat16/float16 gradients
taking a float32 copy first); the parameters' counts are summed into their layers with the `Rollup`.
Entries on an edge go to the bin above it, as in `numpy.histogram`. A layer
none of whose parameters has a gradient (or that owns none, such as an activation module) gets NaN.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .indices import on_device
from .rollup import Rollup
from .tensor_stats import flat_view

LOW, HIGH, BINS = -40.0, 10.0, 100  # log10 |g|: half-decade bins from 1e-40 to 1e10
ZEROS, NONFINITE = 0, 1  # the columns before the bins
COLUMNS = BINS + 2
_CHUNK = 1 << 24  # entries binned at a time: bounds the transient memory


def bin_edges(low: float = LOW, high: float = HIGH, bins: int = BINS) -> np.ndarray:
    """The `bins + 1` edges (log10 |g|) of the histograms' bins."""
    return np.linspace(low, high, bins + 1)


def gradient_histograms(
    grads: list[Tensor | None], rollup: Rollup, *, reduce: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Float64 [layers, COLUMNS]: per layer, its exact zeros, its non-finite entries, then the counts of
    log10 |g| of its other entries in each bin (see the module docstring). `grads[i]` is parameter i's
    gradient (None: no gradient this step). `reduce` sums per-parameter rows over ranks (sharded parameters)."""
    present = tuple(1.0 if g is not None else 0.0 for g in grads)
    device = rollup.owns.device
    per_param = torch.zeros(COLUMNS, len(grads), dtype=torch.float64, device=device)
    for i, grad in enumerate(grads):
        if grad is not None and grad.numel():
            flat = flat_view(grad)
            per_param[:, i] = sum(_histogram(flat[k : k + _CHUNK]) for k in range(0, flat.numel(), _CHUNK)).to(device)
    if reduce is not None:
        per_param = reduce(per_param)
    has_grad = rollup.sum(on_device(present, torch.float64, device)) > 0
    return torch.where(has_grad[:, None], rollup.sum(per_param).T, float("nan"))


def _histogram(flat: Tensor) -> Tensor:
    """Float64 [COLUMNS] of one flat float32/float64 tensor: zeros, non-finite entries, then the bins.

    Non-negative floats order as their bit patterns do: with the sign bit masked off, one `bucketize`
    against the edges' bit patterns sorts every entry into zero, a bin, or inf/NaN (whose patterns are the
    largest), and one `index_add_` counts them (float64 counts are exact; no host sync, no `bincount`)."""
    ints, mask = _BITS[flat.dtype]
    bounds, order = _constants(flat.dtype, flat.device)
    index = torch.bucketize(flat.view(ints) & mask, bounds, right=True, out_int32=True)
    counts = torch.zeros(COLUMNS, dtype=torch.float64, device=flat.device)
    counts.index_add_(0, index, torch.ones(1, dtype=torch.float64, device=flat.device).expand(index.numel()))
    return counts[order]


_BITS = {torch.float32: (torch.int32, 0x7FFFFFFF), torch.float64: (torch.int64, 0x7FFFFFFFFFFFFFFF)}


@functools.lru_cache(maxsize=None)
def _constants(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor]:
    """(bounds, order) on `device`, made once: the bit patterns (as signed ints) of the smallest positive
    `dtype` value, of the inner edges 10^e and of +inf; and the columns from bucketize's index (0 zero,
    1 … BINS the bins, BINS + 1 inf/NaN) to ours (zeros, non-finite, bins)."""
    ints, _ = _BITS[dtype]
    inner = torch.tensor(10.0 ** bin_edges()[1:-1], dtype=dtype).view(ints)
    bounds = torch.cat([torch.ones(1, dtype=ints), inner, torch.tensor([math.inf], dtype=dtype).view(ints)])
    order = torch.tensor([0, BINS + 1, *range(1, BINS + 1)])
    return bounds.to(device), order.to(device)
