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

A parameter of up to HIST_SAMPLE (65,536) entries is counted whole, exactly. A larger one is counted over a fixed
systematic sample of at most HIST_SAMPLE of its flat entries (every p-th, p the smallest prime >= numel / HIST_SAMPLE,
as for the update norms: `sample_stride`), and its counts are scaled by numel / sample size, so that each column
estimates the whole tensor's count and a large weight and a small bias add up in their layer in proportion. Why:
the histograms feed only the report's ridges and TensorBoard, where 65,536 entries resolve a bin holding 1 % of a
tensor to about 4 %; counting every entry made them the largest cost of a detail step (5.5 M gradient entries of a
20 x 512 MLP: 18-23 ms of the step's 35 ms on 2 CPU threads), and on larger models a cost that grows with the
parameters. The cost is now O(layers). Exact zeros and non-finite entries are counted exactly elsewhere (the zero
fractions of the detail steps, the non-finite counts of every step); here they are estimated like the bins.
Each parameter's entries are binned by their bit patterns (see `_histograms`: a masked copy, a bucket, two
table reads and a bin index per entry, bfloat16/float16 gradients taking a float32 copy first); the parameters'
counts are summed into their layers with the `Rollup`.
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
from .sampling import sample_stride
from .tensor_stats import flat_view

LOW, HIGH, BINS = -40.0, 10.0, 100  # log10 |g|: half-decade bins from 1e-40 to 1e10
ZEROS, NONFINITE = 0, 1  # the columns before the bins
COLUMNS = BINS + 2
HIST_SAMPLE = 1 << 16  # entries of a parameter counted; larger ones are sampled (see the module docstring)


def bin_edges(low: float = LOW, high: float = HIGH, bins: int = BINS) -> np.ndarray:
    """The `bins + 1` edges (log10 |g|) of the histograms' bins."""
    return np.linspace(low, high, bins + 1)


def gradient_histograms(
    grads: list[Tensor | None], rollup: Rollup, *, reduce: Callable[[Tensor], Tensor] | None = None,
) -> Tensor:
    """Float64 [layers, COLUMNS]: per layer, its exact zeros, its non-finite entries, then the counts of
    log10 |g| of its other entries in each bin (see the module docstring: exact up to HIST_SAMPLE entries per
    parameter, estimated from a systematic sample above). `grads[i]` is parameter i's gradient (None: no gradient
    this step). `reduce` sums per-parameter rows over ranks (sharded parameters)."""
    present = tuple(1.0 if g is not None else 0.0 for g in grads)
    device = rollup.owns.device
    per_param = torch.zeros(COLUMNS, len(grads), dtype=torch.float64, device=device)
    samples: dict[tuple, list[tuple[int, Tensor, float]]] = {}  # per dtype and device: (parameter, sample, scale)
    for i, grad in enumerate(grads):
        if grad is not None and grad.numel():
            sample, scale = _sample(grad)
            samples.setdefault((sample.dtype, sample.device), []).append((i, sample, scale))
    for group in samples.values():
        for batch in _batches(group):
            counts = _histograms([sample for _, sample, _ in batch])
            for row, (_, _, scale) in enumerate(batch):
                if scale != 1.0:
                    counts[row].mul_(scale)
            per_param[:, on_device(tuple(i for i, _, _ in batch), torch.long, device)] = counts.T.to(device)
    if reduce is not None:
        per_param = reduce(per_param)
    has_grad = rollup.sum(on_device(present, torch.float64, device)) > 0
    return torch.where(has_grad[:, None], rollup.sum(per_param).T, float("nan"))


def _sample(grad: Tensor) -> tuple[Tensor, float]:
    """(the flat float32/float64 entries of `grad` to count, the scale of their counts): all of them up to HIST_SAMPLE
    entries, else every p-th flat entry (`sample_stride`'s prime p) and numel / sample size. A half-precision
    gradient's sample alone takes the float32 copy `_histograms` needs."""
    flat = grad.detach().reshape(-1) if grad.layout is torch.strided else flat_view(grad)
    stride = sample_stride(flat.numel(), HIST_SAMPLE)
    if stride == 1:
        return flat_view(flat), 1.0
    sample = flat[::stride]
    return flat_view(sample), flat.numel() / sample.numel()


BATCH_ENTRIES = 1 << 20  # entries binned together at most: the temporaries stay a few MB whatever the model


def _batches(group: list[tuple[int, Tensor, float]]) -> list[list[tuple[int, Tensor, float]]]:
    """`group` cut into consecutive runs of at most BATCH_ENTRIES entries (a larger sample alone)."""
    batches: list[list[tuple[int, Tensor, float]]] = [[]]
    entries = 0
    for item in group:
        if batches[-1] and entries + item[1].numel() > BATCH_ENTRIES:
            batches.append([])
            entries = 0
        batches[-1].append(item)
        entries += item[1].numel()
    return batches


def _histogram(flat: Tensor) -> Tensor:
    """Float64 [COLUMNS] of one flat float32/float64 tensor: zeros, non-finite entries, then the bins."""
    return _histograms([flat])[0]


def _histograms(flats: list[Tensor]) -> Tensor:
    """Float64 [len(flats), COLUMNS] of flat tensors of one dtype (float32 or float64), binned together: per tensor,
    its zeros, its non-finite entries, then the bins.

    Non-negative floats order as their bit patterns do, so with the sign bit masked off an entry's column is the
    number of edges (as bit patterns: the smallest positive value, the inner edges, +inf) at or below its pattern.
    That count is read from two tables indexed by the pattern's top 15 bits (`_lookup`): the count at the bucket's
    start (one byte per entry), plus one if the entry is past the one edge inside its bucket, then counted per
    tensor and column (`_tally`, the k-th tensor's columns offset by k * COLUMNS). Exactly `bucketize` against the
    edges' patterns, in about a seventh of its time per tensor on the CPU, and a few kernels for all the tensors."""
    flat = flats[0] if len(flats) == 1 else torch.cat(flats)
    ints, mask = _BITS[flat.dtype]
    first, below, order = _lookup(flat.dtype, flat.device)
    patterns = flat.view(ints) & mask
    bucket = patterns >> (_BITS_PER[flat.dtype] - _BUCKET_BITS)
    column = first.index_select(0, bucket).add_(below.index_select(0, bucket) < patterns)
    if len(flats) > 1:
        sizes = tuple(f.numel() for f in flats)
        offsets = on_device(tuple(range(0, COLUMNS * len(flats), COLUMNS)), torch.long, flat.device)
        owner = torch.repeat_interleave(offsets, on_device(sizes, torch.long, flat.device), output_size=flat.numel())
        column = owner.add_(column)  # the k-th tensor's columns from k * COLUMNS on
    return _tally(column, columns=COLUMNS * len(flats)).view(len(flats), COLUMNS)[:, order]


def _tally(index: Tensor, *, columns: int = COLUMNS, fast: bool | None = None) -> Tensor:
    """Float64 [columns]: how many entries of `index` (uint8 or int64 columns) hold each column, exactly. On the
    CPU (`fast`, by default where `index` lives) `bincount`, twice as fast as `index_add_`; on accelerators `histc`
    over unit-wide bins in float64 (exact counts; `bincount` there reads its input's maximum back to the host, a
    sync, and `index_add_` would pile every entry's atomic add onto the few columns a gradient fills)."""
    if (index.device.type == "cpu") if fast is None else fast:
        return torch.bincount(index, minlength=columns).double()
    return torch.histc(index.double(), bins=columns, min=0, max=columns)


_BITS = {torch.float32: (torch.int32, 0x7FFFFFFF), torch.float64: (torch.int64, 0x7FFFFFFFFFFFFFFF)}
_BITS_PER = {torch.float32: 31, torch.float64: 63}  # bits of a pattern with the sign masked off
#: Buckets of bit patterns by their top bits: 2^15 of them hold at most one edge each (a float32 bucket spans
#: 1/128 of a binade, 0.0024 decades, and the float32 subnormals' edges 10^-40 ... 10^-38 fall in different ones;
#: a float64 bucket spans 1/16 of a binade), checked when the tables are built.
_BUCKET_BITS = 15


@functools.lru_cache(maxsize=None)
def _lookup(dtype: torch.dtype, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
    """(first, below, order) on `device`, made once. The edges are the bit patterns (as signed ints) of the smallest
    positive `dtype` value, of the inner edges 10^e and of +inf; an entry's bucketize index (`right=True`) is the
    number of edges at or below its pattern. Per bucket of patterns: `first` (uint8: at most 101), that count at
    the bucket's first pattern; `below`, the last pattern before the edge inside the bucket (the largest int where
    there is none).
    `order` maps bucketize's index (0 zero, 1 … BINS the bins, BINS + 1 inf/NaN) to our columns."""
    ints, _ = _BITS[dtype]
    inner = torch.tensor(10.0 ** bin_edges()[1:-1], dtype=dtype).view(ints)
    edges = torch.cat([torch.ones(1, dtype=ints), inner, torch.tensor([math.inf], dtype=dtype).view(ints)]).long()
    width = 1 << (_BITS_PER[dtype] - _BUCKET_BITS)
    starts = torch.arange(1 << _BUCKET_BITS, dtype=torch.int64) * width
    first = torch.bucketize(starts, edges, right=True)
    last = torch.bucketize(starts + (width - 1), edges, right=True)
    if int((last - first).max()) > 1:
        raise AssertionError(f"a bucket of {dtype} bit patterns holds more than one histogram edge")
    nxt = torch.cat([edges, edges.new_full((1,), torch.iinfo(torch.int64).max)])[first]
    below = torch.where(last > first, nxt - 1, torch.iinfo(ints).max).to(ints)
    order = torch.tensor([0, BINS + 1, *range(1, BINS + 1)])
    return first.to(torch.uint8).to(device), below.to(device), order.to(device)
