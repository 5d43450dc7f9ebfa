"""Exact per-tensor statistics of many tensors at once, on their device, without host syncs.

    >>> stats = tensor_stats([p.grad for p in model.parameters()])
    >>> stats.shape  # rows: sum of squares, max |x|, non-zero count, non-finite count
    torch.Size([4, 6])
    >>> tensor_stats(grads, detail=False)  # one pass per tensor: max |x| and non-zeros left NaN

Two paths give the same numbers:

* **CPU** — a handful of fast kernels per tensor (BLAS dot for the sum of squares, ``aminmax``,
  a sign-sum for the non-zero count), each result read back as a host float. Float32 dots lose accuracy on long
  vectors and underflow below ~1e-19 per entry, so long tensors are summed in chunks and any tensor whose float32
  result is tiny, huge or non-finite is recomputed exactly in float64. On the CPU, reading a result is a memory
  read, not a device sync, so these rare recomputations cost nothing when they do not happen.
* **Accelerators** — one fused ``torch._foreach_norm`` per dtype (float64 accumulation) and a three-kernel
  non-finite count per tensor, all asynchronous; nothing is read back.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .indices import on_device

SUM_OF_SQUARES, MAX_ABS, NONZERO, NONFINITE = range(4)

_CHUNK = 1 << 18  # float32 dots over at most this many entries stay within ~1e-6 relative error
_COUNT_EXACT_F32 = 1 << 24  # float32 sums of 0/1 entries are exact below this length
# A float32 square below the smallest normal number may be flushed to zero or rounded as a
# subnormal: n entries lose less than n * 1.2e-38 of a sum, under 1e-7 of any sum above
# n * 1.2e-31. Smaller sums are recomputed in float64, and so are sums near overflow.
_TINY_F32_PER_ENTRY = torch.finfo(torch.float32).tiny / 1e-7
_HUGE_F32 = 1e30  # float32 sums of squares above this are near overflow: recompute


_FLOATS = (torch.float32, torch.float64)


def flat_view(tensor: Tensor) -> Tensor:
    """A flat float32/float64 view of a dense tensor's entries (values only for a sparse one)."""
    if tensor.layout is torch.strided and tensor.dtype in _FLOATS and tensor.is_contiguous() and tensor.numel():
        flat = tensor.detach() if tensor.requires_grad else tensor  # the common case (a gradient)
        return flat if flat.dim() == 1 else flat.view(-1)  # a bias is flat already: no view to make
    if tensor.is_sparse:
        tensor = tensor.coalesce().values()
    flat = tensor.detach().reshape(-1)
    if flat.numel() == 0:  # an empty tensor has no entries: all its sums and counts are zero
        return flat.new_zeros(1, dtype=torch.float32)
    if flat.is_complex():  # the moduli |z|: sums of squares, maxima and zero counts of a complex tensor are theirs
        flat = flat.abs()
    if flat.dtype not in _FLOATS:
        flat = flat.float()
    return flat


def flat_components(tensor: Tensor) -> Tensor:
    """A flat real view of a tensor's entries for taking differences: a complex tensor's real and imaginary parts
    side by side (|z - w|² is the sum of their squared differences), any other tensor as `flat_view`."""
    if tensor.is_complex():
        return torch.view_as_real(tensor.detach()).reshape(-1)
    return flat_view(tensor)


def sum_of_squares(flats: list[Tensor], *, fast: bool | None = None) -> Tensor:
    """Float64 vector of the sums of squares of each flat tensor (exact to float64 rounding)."""
    if not flats:
        return torch.zeros(0, dtype=torch.float64)
    if not use_fast_path(flats, fast):
        return _norms(flats, 2).square()
    return torch.tensor(squares_on_host(flats), dtype=torch.float64)


def squares_on_host(flats: list[Tensor]) -> list[float]:
    """The CPU path of `sum_of_squares` as host floats (no tensor made): reading a CPU result is a memory read.

        >>> squares_on_host([torch.tensor([3.0, 4.0])])
        [25.0]
    """
    return _repaired(flats, [dot_self(f) for f in flats])


def tensor_stats(tensors: list[Tensor], *, detail: bool = True, fast: bool | None = None) -> Tensor:
    """Float64 [4, n] statistics of each tensor: sum of squares, max |x|, non-zeros, non-finites.

    Counts of a sparse tensor are over its stored values; NaN counts as non-zero. With
    `detail=False` only the sum of squares and the non-finite count are computed (one pass over
    each tensor on the CPU: a non-finite entry makes the sum non-finite, and only then are the
    entries counted); the max |x| and non-zero rows are NaN.
    """
    flats = [flat_view(t) for t in tensors]
    if not flats:
        return torch.zeros(4, 0, dtype=torch.float64)
    if not use_fast_path(flats, fast):
        return _stats_generic(flats, detail)
    return torch.tensor(_stats_cpu(flats, detail), dtype=torch.float64)


def host_norm_stats(flats: list[Tensor]) -> tuple[list[float], list[float]]:
    """(sums of squares, non-finite counts) of flat CPU tensors as host floats: `tensor_stats(..., detail=False)`'s
    two measured rows, before they become a tensor.

        >>> host_norm_stats([torch.tensor([3.0, 4.0]), torch.tensor([math.inf])])
        ([25.0, inf], [0.0, 1.0])
    """
    sums, _, _, nonfinite = _stats_cpu(flats, detail=False)
    return sums, nonfinite


def _stats_cpu(flats: list[Tensor], detail: bool) -> list[list[float]]:
    """The four rows as host floats. Reading a CPU tensor is a memory read, not a sync, so each result is read as it
    comes (one `.item()` per kernel; no stacking) and checked: a non-finite entry makes the sum non-finite (and the
    sign-sum NaN), so only then are the entries counted; doubtful float32 sums are recomputed (`_repaired`)."""
    n = len(flats)
    sums = [dot_self(f) for f in flats]
    if detail:
        peaks = [_peak(*torch.aminmax(f)) for f in flats]
        nonzero = [count_nonzero_fast(f).item() for f in flats]
    else:
        peaks, nonzero = [math.nan] * n, [math.nan] * n
    nonfinite = [0.0] * n
    for i, total in enumerate(sums):
        if math.isfinite(total) and (not detail or math.isfinite(nonzero[i])):
            continue
        nonfinite[i] = float(_nonfinite(flats[i]))
        if detail:
            nonzero[i] = float(torch.count_nonzero(flats[i]))
    return [_repaired(flats, sums, peaks if detail else None), peaks, nonzero, nonfinite]


def _peak(low: Tensor, high: Tensor) -> float:
    """max |x| from `aminmax`'s two 0-d results (NaN when they are: a NaN entry)."""
    low, high = low.item(), high.item()
    return math.nan if math.isnan(low) or math.isnan(high) else max(high, -low)


def use_fast_path(flats: list[Tensor], fast: bool | None) -> bool:
    if fast is not None:
        return fast
    return all(f.device.type == "cpu" for f in flats)


def stack64(scalars: list[Tensor]) -> Tensor:
    """Float64 vector of 0-d tensors of any float/int dtypes, converting once."""
    if len({s.dtype for s in scalars}) > 1:
        scalars = [s.double() for s in scalars]
    return torch.stack(scalars).double()


def dot_self(flat: Tensor) -> float:
    """flat · flat of a flat CPU tensor, as a host float: float32 dots over chunks of at most _CHUNK entries, their
    sum in float64."""
    n = flat.numel()
    if n <= _CHUNK:
        return torch.dot(flat, flat).item()
    k = n // _CHUNK
    head = flat[: k * _CHUNK].view(k, 1, _CHUNK)
    tail = flat[k * _CHUNK :]
    return torch.bmm(head, head.transpose(1, 2)).reshape(k).double().sum().item() + torch.dot(tail, tail).item()


def count_nonzero_fast(flat: Tensor, *, nonnegative: bool = False) -> Tensor:
    """Non-zero entries of a flat float tensor (NaN counts as non-zero only when not `nonnegative`)."""
    signs = torch.sign(flat) if nonnegative else torch.sign(flat).abs_()
    if flat.numel() < _COUNT_EXACT_F32:
        return signs.sum()
    return signs.sum(dtype=torch.float64)


def _repaired(flats: list[Tensor], sums: list[float], peaks: list[float] | None = None) -> list[float]:
    """`sums` (host floats, in place) with the float32 sums that may have underflowed or overflowed recomputed in
    float64 (CPU only: reading a result is a memory read, not a sync)."""
    for i, total in enumerate(sums):
        flat = flats[i]
        if flat.dtype != torch.float32 or flat.numel() * _TINY_F32_PER_ENTRY <= total <= _HUGE_F32:
            continue  # (a NaN sum fails the comparison and is recomputed)
        if peaks is not None and peaks[i] == 0:
            continue  # an all-zero tensor's sum is exactly 0: nothing to repair
        sums[i] = torch.linalg.vector_norm(flat, dtype=torch.float64).square().item()
    return sums


def _stats_generic(flats: list[Tensor], detail: bool) -> Tensor:
    sums = _norms(flats, 2).square()
    nonfinite = torch.stack([_nonfinite(f) for f in flats]).double()
    if not detail:
        nan = torch.full_like(sums, math.nan)
        return torch.stack([sums, nan, nan, nonfinite])
    max_abs = _norms(flats, math.inf)
    nonzero = torch.stack([torch.count_nonzero(f) for f in flats]).double()
    return torch.stack([sums, max_abs, nonzero, nonfinite])


def _norms(flats: list[Tensor], order: float) -> Tensor:
    """Float64 vector of each flat tensor's `order`-norm, accumulated in float64: one fused `torch._foreach_norm` per
    dtype (given a mixed list, it would fall back to one kernel per tensor)."""
    groups: dict[torch.dtype, list[int]] = {}
    for i, flat in enumerate(flats):
        groups.setdefault(flat.dtype, []).append(i)
    if len(groups) == 1:
        return torch.stack(torch._foreach_norm(flats, order, dtype=torch.float64))
    out = torch.empty(len(flats), dtype=torch.float64, device=flats[0].device)
    for members in groups.values():
        norms = torch._foreach_norm([flats[i] for i in members], order, dtype=torch.float64)
        out[on_device(tuple(members), torch.long, out.device)] = torch.stack(norms)
    return out


def count_nonfinite(tensors: list[Tensor], *, fast: bool | None = None) -> Tensor:
    """Float64 0-d count of the inf/NaN entries of all `tensors`, on their device, without a host sync.

        >>> count_nonfinite([torch.tensor([1.0, math.inf]), torch.tensor([[math.nan, 2.0]])])
        tensor(2., dtype=torch.float64)

    On the CPU one sum per tensor decides: it is finite only when every entry is (or it overflowed), and only a
    tensor whose sum is not finite is counted entry by entry. On accelerators every tensor is counted on its device.
    """
    if use_fast_path(tensors, fast):
        return torch.tensor(nonfinite_on_host(tensors), dtype=torch.float64)
    return torch.stack([_nonfinite(t) for t in tensors]).sum().double()


def nonfinite_on_host(tensors: list[Tensor]) -> float:
    """`count_nonfinite` of CPU tensors as a host float (no tensor made).

        >>> nonfinite_on_host([torch.tensor([1.0, math.inf]), torch.tensor([[math.nan, 2.0]])])
        2.0
    """
    return float(sum(float(_nonfinite(t)) for t in tensors if not math.isfinite(t.sum())))


def _nonfinite(tensor: Tensor) -> Tensor:
    """0-d count of the inf/NaN entries of a floating-point tensor: `x - x` is 0 at a finite entry and NaN at inf or
    NaN (three kernels and two temporaries, where `(~isfinite(x)).sum()` takes six and five)."""
    return torch.isnan(tensor - tensor).sum()
