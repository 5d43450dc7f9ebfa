"""Exact per-tensor statistics of many tensors at once, on their device, without host syncs.

    >>> stats = tensor_stats([p.grad for p in model.parameters()])
    >>> stats.shape  # rows: sum of squares, max |x|, non-zero count, non-finite count
    torch.Size([4, 6])
    >>> tensor_stats(grads, detail=False)  # one pass per tensor: max |x| and non-zeros left NaN

Two paths give the same numbers:

* **CPU** — a handful of fast kernels per tensor (BLAS dot for the sum of squares, ``aminmax``,
  a sign-sum for the non-zero count). Float32 dots lose accuracy on long vectors and underflow
  below ~1e-19 per entry, so long tensors are summed in chunks and any tensor whose float32 result is
  tiny, huge or non-finite is recomputed exactly in float64. On the CPU, reading a flag is a memory
  read, not a device sync, so these rare recomputations cost nothing when they do not happen.
* **Accelerators** — fused ``torch._foreach_norm`` (float64 accumulation) and one count kernel per
  tensor, all asynchronous; nothing is read back.
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
        return tensor.detach().view(-1)  # the common case, without the checks below
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
    if not _use_fast_path(flats, fast):
        return torch.stack(torch._foreach_norm(flats, 2, dtype=torch.float64)).square()
    return _repair_sums(flats, stack64([dot_self(f) for f in flats]))


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
    if not _use_fast_path(flats, fast):
        return _stats_generic(flats, detail)
    sums = stack64([dot_self(f) for f in flats])
    if detail:
        extremes = [torch.aminmax(f) for f in flats]
        max_abs = torch.maximum(
            stack64([hi for _, hi in extremes]), stack64([lo for lo, _ in extremes]).neg()
        )
        nonzero = stack64([count_nonzero_fast(f) for f in flats])
    else:
        max_abs = nonzero = torch.full_like(sums, math.nan)
    nonfinite = torch.zeros_like(sums)
    # CPU tensors: reading them is a memory read, not a sync. A non-finite entry makes the sum
    # non-finite (and the sign-sum NaN), so only then are the entries counted.
    counts = nonzero.tolist() if detail else None
    for i, total in enumerate(sums.tolist()):
        if math.isfinite(total) and (counts is None or math.isfinite(counts[i])):
            continue
        nonfinite[i] = float(flats[i].numel() - int(torch.isfinite(flats[i]).sum()))
        if detail:
            nonzero[i] = float(torch.count_nonzero(flats[i]))
    sums = _repair_sums(flats, sums, max_abs if detail else None)
    return torch.stack([sums, max_abs, nonzero, nonfinite])


def _use_fast_path(flats: list[Tensor], fast: bool | None) -> bool:
    if fast is not None:
        return fast
    return all(f.device.type == "cpu" for f in flats)


def stack64(scalars: list[Tensor]) -> Tensor:
    """Float64 vector of 0-d tensors of any float/int dtypes, converting once."""
    if len({s.dtype for s in scalars}) > 1:
        scalars = [s.double() for s in scalars]
    return torch.stack(scalars).double()


def dot_self(flat: Tensor) -> Tensor:
    n = flat.numel()
    if n <= _CHUNK:
        return torch.dot(flat, flat)
    k = n // _CHUNK
    head = flat[: k * _CHUNK].view(k, 1, _CHUNK)
    chunk_sums = torch.bmm(head, head.transpose(1, 2)).reshape(k).double().sum()
    tail = flat[k * _CHUNK :]
    return chunk_sums + torch.dot(tail, tail).double()


def count_nonzero_fast(flat: Tensor, *, nonnegative: bool = False) -> Tensor:
    """Non-zero entries of a flat float tensor (NaN counts as non-zero only when not `nonnegative`)."""
    signs = torch.sign(flat) if nonnegative else torch.sign(flat).abs_()
    if flat.numel() < _COUNT_EXACT_F32:
        return signs.sum()
    return signs.sum(dtype=torch.float64)


def _repair_sums(flats: list[Tensor], sums: Tensor, max_abs: Tensor | None = None) -> Tensor:
    """Recompute in float64 the float32 sums that may have underflowed or overflowed (CPU only:
    reading the sums is a memory read, not a sync)."""
    peaks = max_abs.tolist() if max_abs is not None else None
    for i, total in enumerate(sums.tolist()):
        flat = flats[i]
        if flat.dtype != torch.float32 or flat.numel() * _TINY_F32_PER_ENTRY <= total <= _HUGE_F32:
            continue  # (a NaN sum fails the comparison and is recomputed)
        if peaks is not None and peaks[i] == 0:
            continue  # an all-zero tensor's sum is exactly 0: nothing to repair
        sums[i] = torch.linalg.vector_norm(flat, dtype=torch.float64).square()
    return sums


def _stats_generic(flats: list[Tensor], detail: bool) -> Tensor:
    sums = torch.stack(torch._foreach_norm(flats, 2, dtype=torch.float64)).square()
    numel = on_device(tuple(f.numel() for f in flats), torch.float64, sums.device)
    finite = torch.stack([torch.isfinite(f).sum() for f in flats]).double()
    if not detail:
        nan = torch.full_like(sums, math.nan)
        return torch.stack([sums, nan, nan, numel - finite])
    max_abs = stack64(torch._foreach_norm(flats, math.inf))
    nonzero = torch.stack([torch.count_nonzero(f) for f in flats]).double()
    return torch.stack([sums, max_abs, nonzero, numel - finite])
