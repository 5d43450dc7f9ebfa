"""Distributed runs (DDP, FSDP): which process writes, and activation statistics pooled across processes.

    >>> distributed()                    # True inside an initialised process group of 2+ processes
    >>> is_writer()                      # rank 0 (or no process group) writes the record
    >>> totals, maxima = across_ranks(totals, maxima)   # every rank, at the same step

Gradient statistics need no communication: they are taken at `optimizer.step()`, after DDP's
backward has all-reduced the gradients, so every rank holds the same (averaged) gradients.
Activations differ by rank (each sees its shard of the batch): at the steps that measure them every
rank exchanges its per-layer totals (entries, sum, squared deviations, counts) in one all-gather and
its per-unit maxima in one all-reduce (max), and pools them exactly — the statistics of the global
batch. The unit counts travel as an extra row of the all-gathered totals; reading that row back
(one number per rank and layer) is the one host sync of an activation step under NCCL.
"""

from __future__ import annotations

from typing import TypeVar

import torch
from torch import Tensor

from .indices import on_device
from .moments import pool

T = TypeVar("T")


def distributed() -> bool:
    """Whether this process is one of 2+ in an initialised `torch.distributed` process group."""
    dist = torch.distributed
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_writer() -> bool:
    """Rank 0 of a distributed run, or any process outside one."""
    return not distributed() or torch.distributed.get_rank() == 0


def from_writer(value: T) -> T:
    """`value` (any picklable object) as rank 0 has it: every rank calls this at the same point (one
    broadcast, a host sync); `value` itself outside a group.

        >>> first_step = from_writer(store.last_step())    # every rank counts from rank 0's record
    """
    if not distributed():
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def across_ranks(totals: Tensor, maxima: dict[int, Tensor | None]) -> tuple[Tensor, dict[int, Tensor | None]]:
    """Pool `activations._totals` of every rank: float64 [5, layers] totals and per-unit maxima per layer."""
    dist = torch.distributed
    device = _collective_device(totals.device)
    n_layers = totals.shape[1]
    units = on_device(_unit_counts(maxima, n_layers), torch.float64, device)  # built once per distinct value
    mine = torch.cat([totals.to(device), units[None]])  # the unit counts ride along as a sixth row
    parts = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, mine)
    stacked = torch.stack(parts)  # ranks × 6 × layers
    count, summed, m2 = stacked[:, 0], stacked[:, 1], stacked[:, 2]
    layer = torch.arange(n_layers, device=device).repeat(len(parts))
    shift = torch.where(count > 0, summed / count, 0.0)
    n, total, squares = pool(layer, count.flatten(), summed.flatten(), shift.flatten(), m2.flatten(), n_layers)
    pooled = torch.stack([n, total, squares, stacked[:, 3].sum(0), stacked[:, 4].sum(0)])
    return pooled.to(totals.device), _max_across_ranks(maxima, stacked[:, 5], device)


_NO_MAXIMA, _UNITS_DIFFER = -2.0, -1.0


def _unit_counts(maxima: dict[int, Tensor | None], n_layers: int) -> tuple[float, ...]:
    """Per layer: the size of this rank's per-unit maxima, -1 where its calls' unit counts differ, -2 where none."""
    return tuple(
        _NO_MAXIMA if i not in maxima else _UNITS_DIFFER if maxima[i] is None else float(maxima[i].numel())
        for i in range(n_layers)
    )


def _max_across_ranks(maxima: dict[int, Tensor | None], units: Tensor, device: torch.device) -> dict[int, Tensor | None]:
    """Per-unit maxima over every rank, for the layers whose unit count all ranks agree on (else None).

    `units`: ranks × layers unit counts (see `_unit_counts`), read to the host once (a sync under NCCL).
    """
    dist = torch.distributed
    agreed: dict[int, int | None] = {}
    for i, column in enumerate(zip(*units.tolist())):
        seen = {size for size in column if size != _NO_MAXIMA}
        if seen:
            size = seen.pop() if len(seen) == 1 else _UNITS_DIFFER
            agreed[i] = int(size) if size >= 0 else None
    layers = sorted(i for i, size in agreed.items() if size is not None)
    out: dict[int, Tensor | None] = {i: None for i, size in agreed.items() if size is None}
    if layers:
        flat = torch.cat([  # float64: exact for every float dtype (a tiny max must not round to 0)
            maxima[i].reshape(-1).to(device, torch.float64) if maxima.get(i) is not None
            else torch.zeros(agreed[i], dtype=torch.float64, device=device)  # not called here: max's identity
            for i in layers
        ])
        dist.all_reduce(flat, op=dist.ReduceOp.MAX)
        out.update(zip(layers, flat.split([agreed[i] for i in layers])))
    return out


def _collective_device(device: torch.device) -> torch.device:
    """NCCL communicates CUDA tensors; gloo, CPU ones (and CUDA ones, through the host)."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return device
