"""Activation statistics from forward hooks: mean, std, saturated, zero and dead-unit fractions.

    >>> probe = ActivationProbe(layers)
    >>> probe.arm()  # hooks on for the coming step
    >>> model(x).sum().backward()
    >>> probe.collect()  # float64 [5, n_layers]: act_mean, act_std, saturated_frac, zero_frac, dead_frac
    >>> probe.disarm()  # hooks off: steps without activation statistics pay nothing

The hooks are registered only for the steps that measure activations: a module with a forward
hook takes a slower call path in torch, which other steps are spared.

Only forward passes with autograd enabled count (a `torch.no_grad()` validation pass is not part of
a training step). A module called several times in one step aggregates its calls: moments are
merged exactly (Chan et al.), a unit is dead only if it is zero in every call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .hooks import Hooks
from .indices import on_device
from .layers import SATURATION_EPS, ActivationSpec, Layer, saturated_count, unit_maxima
from .moments import pool
from .tensor_stats import count_nonzero_fast, flat_view, stack64, sum_of_squares

N_METRICS = 5
_NAN = float("nan")


@dataclass
class _Call:
    """The raw reductions of one call's output; the arithmetic on them waits for `collect()`."""

    layer: int
    count: int
    total: Tensor  # float64 sum of outputs
    shift: Tensor  # the float32 mean the squares were taken about
    squares: Tensor  # float64 sum of squared deviations from `shift`
    saturated: Tensor | None
    nonzero: Tensor | None
    unit_max: Tensor | None  # per-unit max |y| over everything but the unit axis


class ActivationProbe(Hooks):
    """Forward hooks on activation layers that accumulate statistics while armed."""

    def __init__(self, layers: list[Layer], saturation_eps: float = SATURATION_EPS):
        super().__init__()
        self.layers = layers
        self.saturation_eps = saturation_eps
        self._calls: list[_Call] = []
        #: in a distributed run: pools this process's (totals, unit maxima) with the other processes'
        self.across_ranks = None

    def _register(self, handles: list) -> None:
        for i, layer in enumerate(self.layers):
            if layer.activation is not None:
                handles.append(layer.module.register_forward_hook(self._hook_for(i)))

    def _forget(self) -> None:
        self._calls = []

    def _hook_for(self, index: int):
        spec = self.layers[index].activation

        def hook(module, inputs, output):
            if self._failed or not torch.is_grad_enabled() or not isinstance(output, Tensor) or not output.numel():
                return  # an empty batch's output has no statistics: the step records NaN (not measured)
            try:
                self._calls.append(self._measure(index, output, spec))
            except Exception as err:  # never crash the user's forward pass
                self._fail(err)

        return hook

    def _measure(self, index: int, output: Tensor, spec: ActivationSpec) -> _Call:
        """A few reductions over the output while it is still in cache; no scalar arithmetic."""
        flat = flat_view(output)
        n = flat.numel()
        total = flat.sum(dtype=torch.float64)
        shift = (total / n).to(flat.dtype)
        # squares about the float-rounded mean; collect() corrects them to the exact mean.
        # sum_of_squares recomputes in float64 where float32 squares underflow or overflow
        squares = sum_of_squares([flat - shift])[0]
        saturated = nonzero = unit_max = None
        if spec.bounds is not None:
            saturated = saturated_count(flat, spec.bounds, self.saturation_eps)
        if spec.rectified:
            nonzero = count_nonzero_fast(flat, nonnegative=spec.nonnegative)
            unit_max = unit_maxima(output.detach(), nonnegative=spec.nonnegative)
        return _Call(index, n, total, shift, squares, saturated, nonzero, unit_max)

    def collect(self) -> Tensor:
        """Float64 [5, n_layers] of this step's statistics (NaN where not measured), then reset.

        With `across_ranks` set (a distributed run), every process calls this at the same step and
        gets the statistics of all processes' activations pooled (see probe/distributed.py).
        """
        calls, self._calls = self._calls, []
        totals, maxima = _totals(calls, len(self.layers))
        if self.across_ranks is not None:
            totals, maxima = self.across_ranks(totals, maxima)
        return _statistics(totals, maxima)


def _totals(calls: list[_Call], n_layers: int) -> tuple[Tensor, dict[int, Tensor | None]]:
    """A step's calls summed per layer, in a fixed number of vectorised ops.

    Returns float64 [5, n_layers] — entries, sum, squared deviations about the layer's mean,
    saturated count, non-zero count (NaN where a count does not apply; 0 for a layer not called) —
    and each rectified layer's per-unit maxima over its calls (None when the calls' unit counts differ).
    """
    if not calls:
        return torch.zeros((N_METRICS, n_layers), dtype=torch.float64), {}
    device = calls[0].total.device
    layer = on_device(tuple(c.layer for c in calls), torch.long, device)
    count = on_device(tuple(float(c.count) for c in calls), torch.float64, device)
    total = torch.stack([c.total for c in calls])
    shift = torch.stack([c.shift for c in calls]).double()
    squares = torch.stack([c.squares for c in calls])
    n, summed, m2 = pool(layer, count, total, shift, squares, n_layers)

    nan = torch.full((), _NAN, dtype=torch.float64, device=device)  # a fill, not a copy from the host

    def per_layer_count(field: str) -> Tensor:  # NaN where the layer's calls do not measure it
        values = [nan if getattr(c, field) is None else getattr(c, field) for c in calls]
        return torch.zeros(n_layers, dtype=torch.float64, device=device).index_add_(0, layer, stack64(values))

    totals = torch.stack([n, summed, m2, per_layer_count("saturated"), per_layer_count("nonzero")])
    return totals, _unit_maxima(calls)


def _statistics(totals: Tensor, maxima: dict[int, Tensor | None]) -> Tensor:
    """Float64 [5, n_layers]: act_mean, act_std, saturated_frac, zero_frac, dead_frac from `_totals`."""
    n, summed, m2, saturated, nonzero = totals
    dead = _dead_fractions(maxima, totals.shape[1], totals.device)
    out = torch.stack([summed / n, (m2.clamp(min=0) / n).sqrt(), saturated / n, 1 - nonzero / n, dead])
    return torch.where(n > 0, out, torch.full_like(out, _NAN))


def _unit_maxima(calls: list[_Call]) -> dict[int, Tensor | None]:
    """Per rectified layer, the per-unit max |y| over its calls: a unit is dead only if zero in every call."""
    alive: dict[int, Tensor | None] = {}
    for call in calls:
        if call.unit_max is None:
            continue
        if call.layer not in alive:
            alive[call.layer] = call.unit_max
        elif alive[call.layer] is not None and alive[call.layer].shape == call.unit_max.shape:
            alive[call.layer] = torch.maximum(alive[call.layer], call.unit_max)
        else:
            alive[call.layer] = None  # unit counts differ between calls: no per-unit answer
    return alive


def _dead_fractions(alive: dict[int, Tensor | None], n_layers: int, device: torch.device) -> Tensor:
    """Per layer, the fraction of units whose max |y| is 0 (NaN for layers without per-unit maxima)."""
    out = torch.full((n_layers,), _NAN, dtype=torch.float64, device=device)
    known = {i: u for i, u in alive.items() if u is not None}
    if known:
        units = torch.cat([u.reshape(-1) for u in known.values()])
        numels = tuple(u.numel() for u in known.values())
        owner = torch.repeat_interleave(on_device(tuple(range(len(known))), torch.long, device),
                                        on_device(numels, torch.long, device), output_size=sum(numels))
        dead = torch.zeros(len(known), dtype=torch.float64, device=device).index_add_(0, owner, (units == 0).double())
        out[on_device(tuple(known), torch.long, device)] = dead / on_device(numels, torch.float64, device)
    return out
