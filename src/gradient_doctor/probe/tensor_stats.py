"""Exact per-tensor statistics of many tensors at once, on their device, without host syncs.

    >>> stats = tensor_stats([p.grad for p in model.parameters()])
    >>> stats.shape  # rows: sum of squares, max |x|, non-zero count, non-finite count
    torch.Size([4, 6])

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

SUM_OF_SQUARES, MAX_ABS, NONZERO, NONFINITE = range(4)

_CHUNK = 1 << 18  # float32 dots over at most this many entries stay within ~1e-6 relative error
_COUNT_EXACT_F32 = 1 << 24  # float32 sums of 0/1 entries are exact below this length
_TINY_F32 = 1e-20  # float32 sums of squares below this may hide underflowed entries: recompute
_HUGE_F32 = 1e30  # float32 sums of squares above this are near overflow: recompute


def flat_view(tensor: Tensor) -> Tensor:
    """A flat float32/float64 view of a dense tensor's entries (values only for a sparse one)."""
    if tensor.is_sparse:
        tensor = tensor.coalesce().values()
    flat = tensor.detach().reshape(-1)
    if flat.numel() == 0:  # an empty tensor has no entries: all its sums and counts are zero
        return flat.new_zeros(1, dtype=torch.float32)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    return flat


def sum_of_squares(flats: list[Tensor], *, fast: bool | None = None) -> Tensor:
    """Float64 vector of the sums of squares of each flat tensor (exact to float64 rounding)."""
    if not flats:
        return torch.zeros(0, dtype=torch.float64)
    if not _use_fast_path(flats, fast):
        return torch.stack(torch._foreach_norm(flats, 2, dtype=torch.float64)).square()
    return _repair_sums(flats, _stack64([dot_self(f) for f in flats]))


def tensor_stats(tensors: list[Tensor], *, fast: bool | None = None) -> Tensor:
    """Float64 [4, n] statistics of each tensor: sum of squares, max |x|, non-zeros, non-finites.

    Counts of a sparse tensor are over its stored values; NaN counts as non-zero.
    """
    flats = [flat_view(t) for t in tensors]
    if not flats:
        return torch.zeros(4, 0, dtype=torch.float64)
    if not _use_fast_path(flats, fast):
        return _stats_generic(flats)
    sums = _stack64([dot_self(f) for f in flats])
    extremes = [torch.aminmax(f) for f in flats]
    max_abs = torch.maximum(
        _stack64([hi for _, hi in extremes]), _stack64([lo for lo, _ in extremes]).neg()
    )
    nonzero = _stack64([count_nonzero_fast(f) for f in flats])
    nonfinite = torch.zeros_like(sums)
    suspicious = ~torch.isfinite(sums) | ~torch.isfinite(nonzero)
    if bool(suspicious.any()):  # CPU tensors: a memory read, not a sync
        for i in suspicious.nonzero().flatten().tolist():
            finite = torch.isfinite(flats[i])
            nonfinite[i] = float(flats[i].numel() - int(finite.sum()))
            nonzero[i] = float(torch.count_nonzero(flats[i]))
    sums = _repair_sums(flats, sums, max_abs)
    return torch.stack([sums, max_abs, nonzero, nonfinite])


def _use_fast_path(flats: list[Tensor], fast: bool | None) -> bool:
    if fast is not None:
        return fast
    return all(f.device.type == "cpu" for f in flats)


def _stack64(scalars: list[Tensor]) -> Tensor:
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


def count_nonzero_fast(flat: Tensor) -> Tensor:
    signs = torch.sign(flat).abs_()
    if flat.numel() < _COUNT_EXACT_F32:
        return signs.sum()
    return signs.sum(dtype=torch.float64)


def _repair_sums(flats: list[Tensor], sums: Tensor, max_abs: Tensor | None = None) -> Tensor:
    """Recompute in float64 the float32 sums that may have underflowed or overflowed."""
    risky = (sums < _TINY_F32) | (sums > _HUGE_F32) | ~torch.isfinite(sums)
    if max_abs is not None:  # an all-zero tensor's sum is exactly 0: nothing to repair
        risky &= max_abs > 0
    if bool(risky.any()):  # CPU tensors: a memory read, not a sync
        for i in risky.nonzero().flatten().tolist():
            if flats[i].dtype == torch.float32:
                sums[i] = torch.linalg.vector_norm(flats[i], dtype=torch.float64).square()
    return sums


def _stats_generic(flats: list[Tensor]) -> Tensor:
    sums = torch.stack(torch._foreach_norm(flats, 2, dtype=torch.float64)).square()
    max_abs = _stack64(torch._foreach_norm(flats, math.inf))
    nonzero = torch.stack([torch.count_nonzero(f) for f in flats]).double()
    numel = torch.tensor([f.numel() for f in flats], dtype=torch.float64, device=sums.device)
    finite = torch.stack([torch.isfinite(f).sum() for f in flats]).double()
    return torch.stack([sums, max_abs, nonzero, numel - finite])
