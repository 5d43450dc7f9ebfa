"""Sharded parameters (FSDP2's DTensors): statistics from each rank's local shard, summed across ranks.

    >>> shards = Shards(params)            # when any parameter is a DTensor (fully_shard)
    >>> shards.local                       # the local shard of every parameter (plain tensors)
    >>> shards.grads                       # objects whose .grad is the local shard of the gradient
    >>> shards.sum_squares(per_param)      # one all-reduce: the global sums of squares (and counts)

The norm of a sharded tensor is the root of the sum over ranks of its local shards' squares — not
the local shard's norm (the pitfall of `clip_grad_norm_` under FSDP2). Local sums of squares,
non-zero and non-finite counts are all-reduced (SUM) in one collective; max |g| in a second (MAX)
on the steps that measure it. A replicated tensor (a plain one, or a DTensor's Replicate mesh
dimensions) is counted once: its local sums are divided by its number of replicas. The
collectives run on the default process group; a DTensor's mesh may be smaller than it when the world
is tiled by copies of that mesh (a sub-mesh of a 2-D mesh, e.g. `mesh["tp"]` under data parallelism).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def any_sharded(params: list[Tensor]) -> bool:
    """Whether any parameter is a DTensor (a module under `fully_shard`, or tensor parallel)."""
    return any(_is_dtensor(p) for p in params)


class Shards:
    """The local views of a model's parameters and the cross-rank reductions of their statistics."""

    def __init__(self, params: list[Tensor]):
        self.params = params
        world = torch.distributed.get_world_size()
        self._weight = torch.tensor([1.0 / _replicas(p, world) for p in params], dtype=torch.float64,
                                    device=_local(params[0].detach()).device if params else "cpu")
        self.grads = [_LocalGrad(p) for p in params]

    @property
    def local(self) -> list[Tensor]:
        """The local shard of every parameter, read now: FSDP2 may swap a DTensor's local tensor
        (`reset_sharded_param`), so views taken once could go stale."""
        return [_local(p.detach()) for p in self.params]

    def sum_squares(self, squares: Tensor) -> Tensor:
        """Float64 per-parameter values (rows × params, or params) summed over ranks, replicas once."""
        out = squares * self._weight
        torch.distributed.all_reduce(out)
        return out

    def reduce_stats(self, stats: Tensor, rows_summed: list[int], row_max: int | None) -> Tensor:
        """`tensor_stats` rows of local shards → global: summed rows in one all-reduce, the max row in one more."""
        out = stats.clone()
        out[rows_summed] = self.sum_squares(stats[rows_summed])
        if row_max is not None:
            torch.distributed.all_reduce(out[row_max], op=torch.distributed.ReduceOp.MAX)
        return out


class _LocalGrad:
    """Looks like a parameter to `gradient_blocks`: `.grad` is the local shard of the gradient."""

    def __init__(self, param: Tensor):
        self._param = param
        self.device = _local(param.detach()).device

    @property
    def grad(self) -> Tensor | None:
        grad = self._param.grad
        return None if grad is None else _local(grad)


def _is_dtensor(t: Tensor) -> bool:
    return hasattr(t, "to_local") and hasattr(t, "placements")


def _local(t: Tensor) -> Tensor:
    return t.to_local() if _is_dtensor(t) else t


def _replicas(p: Tensor, world: int) -> int:
    """On how many ranks each local entry of `p` lives: the copies of its mesh in the world times the
    mesh sizes of its non-Shard dimensions (a plain tensor: on every rank)."""
    if not _is_dtensor(p):
        return world
    mesh = p.device_mesh
    copies = world // mesh.size()
    return copies * math.prod(mesh.size(d) for d, placement in enumerate(p.placements) if not placement.is_shard())
