"""Gradient, weight and update statistics per parameter tensor, rolled up per layer.

    >>> layer_block, param_block = gradient_blocks(params, rollup)
    >>> layer_block.shape, param_block.shape  # rows: grad_norm, nonfinite, grad_max, grad_zero_frac
    (torch.Size([4, n_layers]), torch.Size([4, n_params]))
    >>> gradient_blocks(params, rollup, detail=False)  # grad_norm and nonfinite only; the rest NaN
    >>> layer_norms, param_norms = weight_norms(params, rollup)

A layer's value is over its own parameters jointly (weight and bias together): the L2 norm of all
their entries, the sum of non-finite counts, the max |g| over them, the zero fraction of all their
entries. Parameters without a gradient this step (frozen, unused) are left out; a layer none of
whose parameters has a gradient gets NaN for the gradient metrics.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from .indices import on_device
from .rollup import Rollup
from .sampling import sample_stride
from .tensor_stats import (
    MAX_ABS,
    NONFINITE,
    NONZERO,
    SUM_OF_SQUARES,
    flat_components,
    flat_view,
    host_norm_stats,
    sum_of_squares,
    tensor_stats,
)

_NAN = float("nan")
_SUMMED = (SUM_OF_SQUARES, NONFINITE, NONZERO)  # the statistics summed over a layer's parameters
_PARAM_ROWS = (SUM_OF_SQUARES, NONFINITE, MAX_ABS, NONZERO)  # become grad_norm, nonfinite, grad_max, grad_zero_frac


def gradient_blocks(
    params: list[Tensor], rollup: Rollup, numel: Tensor | None = None, *, detail: bool = True,
    fast: bool | None = None, reduce: Callable[[Tensor, bool], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Float64 ([4, layers], [4, params]) blocks: grad_norm, nonfinite, grad_max, grad_zero_frac.

    With `detail=False` the last two rows are NaN and each gradient is read once. `numel` (float64
    entries per parameter) may be passed in to save rebuilding it every step. Sharded parameters
    (see sharded.py): `params` hold local shards, `reduce(stats, detail)` makes their statistics global.
    """
    device = params[0].device
    on_host = fast if fast is not None else device.type == "cpu"  # decided before any per-parameter work
    if on_host and not detail and reduce is None:
        flats = _host_flats(params, fast)
        if flats is not None:
            return norm_blocks_on_host(flats, rollup)
    if numel is None:
        numel = on_device(tuple(float(p.numel()) for p in params), torch.float64, device)
    present = [i for i, p in enumerate(params) if p.grad is not None]
    if len(present) == len(params):  # the common case: every parameter has a gradient
        stats = tensor_stats([p.grad for p in params], detail=detail, fast=fast).to(device)
        has_grad = None
    else:  # frozen or unused parameters: left out of their layers' values
        stats = torch.full((4, len(params)), _NAN, dtype=torch.float64, device=device)
        has_grad = torch.zeros(len(params), dtype=torch.float64, device=device)
        if present:
            index = on_device(tuple(present), torch.long, device)
            stats[:, index] = tensor_stats([params[i].grad for i in present], detail=detail, fast=fast).to(device)
            has_grad[index] = 1.0
    if reduce is not None:
        stats = reduce(stats, detail)

    # rows picked by an index tensor made once (a CUDA tensor indexed by a list syncs); few kernels, most in place
    summed = stats.index_select(0, on_device(_SUMMED[: 3 if detail else 2], torch.long, device))
    if has_grad is not None:
        summed = torch.where(has_grad > 0, summed, 0.0)
    layer_sums = rollup.sum(summed)  # per layer: squares, non-finites (, non-zeros)
    param_block = stats.index_select(0, on_device(_PARAM_ROWS, torch.long, device))  # rows 2, 3 NaN unless detail
    param_block[0].sqrt_()
    layer_block = torch.full((4, rollup.n_layers), _NAN, dtype=torch.float64, device=device)
    layer_block[:2] = layer_sums[:2]
    layer_block[0].sqrt_()
    if detail:
        entries = rollup.sum(numel if has_grad is None else numel * has_grad)
        maxima = stats[MAX_ABS] if has_grad is None else torch.where(has_grad > 0, stats[MAX_ABS], -torch.inf)
        param_block[3] = 1 - stats[NONZERO] / numel
        layer_block[2] = rollup.amax(maxima)
        layer_block[3] = 1 - layer_sums[2] / entries
    # a layer without parameters, or none of whose parameters has a gradient: NaN
    layer_has_grad = rollup.owns if has_grad is None else rollup.sum(has_grad) > 0
    return torch.where(layer_has_grad, layer_block, _NAN), param_block


def norm_blocks_on_host(flats: list[Tensor], rollup: Rollup) -> tuple[Tensor, Tensor]:
    """`gradient_blocks(..., detail=False)` of CPU gradients (`flats`, one per parameter, all present), summed into
    layers on the host: the same float64 sums in the same order as the tensor path, so the same numbers, without its
    dozen small kernels (on a small model those cost more than reading the gradients). The blocks are CPU tensors
    over numpy arrays (`.numpy()` reads them back for free).

        >>> layer_block, param_block = norm_blocks_on_host([flat_view(p.grad) for p in params], rollup)
    """
    sums, nonfinite = host_norm_stats(flats)
    squares, bad = [0.0] * rollup.n_layers, [0.0] * rollup.n_layers
    for param, layer in rollup.pairs:
        squares[layer] += sums[param]
        bad[layer] += nonfinite[param]
    unmeasured = [_NAN] * rollup.n_layers
    owned = rollup.owned_layers
    layer_block = np.array([  # math.sqrt is IEEE sqrt: as np.sqrt and torch.sqrt_
        [math.sqrt(squares[i]) if i in owned else _NAN for i in range(rollup.n_layers)],
        [bad[i] if i in owned else _NAN for i in range(rollup.n_layers)], unmeasured, unmeasured,
    ])
    unmeasured = [_NAN] * len(flats)
    param_block = np.array([[math.sqrt(total) for total in sums], nonfinite, unmeasured, unmeasured])
    return torch.from_numpy(layer_block), torch.from_numpy(param_block)


def _host_flats(params: list[Tensor], fast: bool | None) -> list[Tensor] | None:
    """The flat views of every parameter's gradient for `norm_blocks_on_host`, or None when one has no gradient or
    (unless `fast`) is not on the CPU: one pass over the parameters.

        >>> _host_flats(list(model.parameters()), None)   # after backward() on the CPU
        [tensor([...]), ...]
    """
    flats = []
    for param in params:
        grad = param.grad
        if grad is None or (fast is None and not grad.is_cpu):
            return None
        flats.append(flat_view(grad))
    return flats


def weight_norms(
    params: list[Tensor], rollup: Rollup, *, fast: bool | None = None, reduce: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Float64 ([layers], [params]) L2 norms of the parameters, frozen ones included; NaN for a
    layer without parameters (an activation module), where a weight norm does not apply.
    `reduce`: sums local shards' squares over ranks (sharded parameters)."""
    squares = sum_of_squares([flat_view(p) for p in params], fast=fast).to(params[0].device)
    if reduce is not None:
        squares = reduce(squares)
    return torch.where(rollup.owns, rollup.sum(squares).sqrt(), _NAN), squares.sqrt()


UPDATE_SAMPLE = 4096  # entries of a parameter kept across an update step; smaller parameters are kept whole


class UpdateTracker:
    """‖Δw‖ across one optimizer step, from the entries kept before the step: all entries of a parameter with up
    to UPDATE_SAMPLE entries (exact), else a fixed systematic sample of at most UPDATE_SAMPLE of them, scaled by
    numel / sample size (an estimate of the sum of squares; relative error about sqrt(2 / 4096) ≈ 2 % for
    Gaussian-like updates, more for updates concentrated on a few entries, e.g. plain SGD on an embedding).

    >>> tracker.snapshot(); optimizer.step(); layer_row, param_row = tracker.measure()

    Memory: at most UPDATE_SAMPLE values per tracked parameter (16 KiB in float32), held only between the
    optimizer's step pre- and post-hooks on the steps where updates are recorded: 0.5 % of a GPT-2-small's
    parameter memory, instead of a full copy.
    """

    def __init__(self, params: Callable[[], list[Tensor]], tracked: list[int] | tuple[int, ...], rollup: Rollup,
                 reduce: Callable[[Tensor], Tensor] | None = None):
        self._params = params  # read at each use: FSDP2 may swap a parameter's local shard
        self.reduce = reduce  # sums local shards' squares over ranks (sharded parameters)
        self.tracked = tuple(tracked)
        chosen = set(tracked)
        self._mask = tuple(float(i in chosen) for i in range(len(params())))  # 1.0 for tracked parameters
        self.rollup = rollup
        self._before: list[Tensor] | None = None
        self._strides: tuple[int, ...] = ()
        self._scales: tuple[float, ...] = ()  # numel / kept entries, per tracked parameter

    @property
    def params(self) -> list[Tensor]:
        return self._params()

    def snapshot(self) -> None:
        flats = self._flats()
        self._before = [f.clone() for f in flats]

    def _flats(self) -> list[Tensor]:
        """The kept entries' views, one per tracked parameter (strides fixed at the first call)."""
        params = self.params
        flats = [flat_components(params[i]) for i in self.tracked]
        if not self._strides:
            self._strides = tuple(sample_stride(f.numel(), UPDATE_SAMPLE) for f in flats)
            self._scales = tuple(f.numel() / len(range(0, f.numel(), s)) for f, s in zip(flats, self._strides))
        return [f if s == 1 else f[::s] for f, s in zip(flats, self._strides)]

    @property
    def pending(self) -> bool:
        return self._before is not None

    def discard(self) -> None:
        self._before = None

    def measure(self, *, fast: bool | None = None) -> tuple[Tensor, Tensor]:
        """Float64 ([layers], [params]) update norms since `snapshot()`; NaN for untracked params."""
        before, self._before = self._before, None
        params = self.params
        device = params[0].device
        per_param = torch.full((len(params),), _NAN, dtype=torch.float64, device=device)
        if self.tracked:
            torch._foreach_sub_(before, self._flats())
            squares = sum_of_squares(before, fast=fast).to(device) * on_device(self._scales, torch.float64, device)
            per_param[on_device(self.tracked, torch.long, device)] = squares
        del before
        if self.reduce is not None:
            per_param = self.reduce(per_param)
        tracked = on_device(self._mask, torch.float64, device)
        per_layer = self.rollup.sum(torch.where(tracked > 0, per_param, 0.0)).sqrt()
        per_layer = torch.where(self.rollup.sum(tracked) > 0, per_layer, torch.full_like(per_layer, _NAN))
        return per_layer, per_param.sqrt()
