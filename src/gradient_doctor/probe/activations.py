"""Activation statistics from forward hooks: mean, std, saturated, zero and dead-unit fractions.

    >>> probe = ActivationProbe(layers)
    >>> handles = probe.attach(); probe.active = True
    >>> model(x).sum().backward()
    >>> probe.collect()  # float64 [5, n_layers]: act_mean, act_std, saturated_frac, zero_frac, dead_frac

Only forward passes with autograd enabled count (a `torch.no_grad()` validation pass is not part of
a training step). A module called several times in one step aggregates its calls: moments are
merged exactly (Chan et al.), a unit is dead only if it is zero in every call.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .layers import SATURATION_EPS, ActivationSpec, Layer, unit_dim
from .tensor_stats import count_nonzero_fast, flat_view, sum_of_squares

N_METRICS = 5
_NAN = float("nan")


@dataclass
class _Call:
    count: int
    total: Tensor  # float64 sum of outputs
    m2: Tensor  # float64 sum of squared deviations from this call's mean
    saturated: Tensor | None
    nonzero: Tensor | None
    unit_max: Tensor | None  # per-unit max |y| over everything but the unit axis


class ActivationProbe:
    """Forward hooks on activation layers that accumulate statistics while `active` is set."""

    def __init__(self, layers: list[Layer], saturation_eps: float = SATURATION_EPS):
        self.layers = layers
        self.saturation_eps = saturation_eps
        self.active = False
        self.on_error = None  # set by the owner: called with the exception, disables the probe
        self._calls: dict[int, list[_Call]] = {}

    def attach(self) -> list:
        """Register the forward hooks; returns their handles."""
        return [
            layer.module.register_forward_hook(self._hook_for(i))
            for i, layer in enumerate(self.layers)
            if layer.activation is not None
        ]

    def _hook_for(self, index: int):
        spec = self.layers[index].activation

        def hook(module, inputs, output):
            if not self.active or not torch.is_grad_enabled() or not isinstance(output, Tensor):
                return
            try:
                self._calls.setdefault(index, []).append(self._measure(output, spec))
            except Exception as err:  # never crash the user's forward pass
                self.active = False
                if self.on_error is not None:
                    self.on_error(err)

        return hook

    def _measure(self, output: Tensor, spec: ActivationSpec) -> _Call:
        flat = flat_view(output)
        n = flat.numel()
        mean64 = flat.sum(dtype=torch.float64) / n
        shift = mean64.to(flat.dtype)
        centred = flat - shift
        # sum of squares about the float-rounded mean, corrected to the exact mean; sum_of_squares
        # recomputes in float64 where float32 squares underflow or overflow (tiny or huge outputs)
        m2 = sum_of_squares([centred])[0] - n * (shift.double() - mean64).square()
        saturated = nonzero = unit_max = None
        if spec.bounds is not None:
            low, high = spec.bounds
            half = (high - low) / 2
            margin = half - self.saturation_eps * (high - low)
            saturated = ((flat - (low + half)).abs_() >= margin).sum()
        if spec.rectified:
            nonzero = count_nonzero_fast(flat)
            values = output.detach()
            if values.dim() > 1:
                axis = unit_dim(values)
                values = values.abs().amax(dim=[d for d in range(values.dim()) if d != axis])
            else:
                values = values.abs()
            unit_max = values
        return _Call(n, mean64 * n, m2, saturated, nonzero, unit_max)

    def collect(self) -> Tensor:
        """Float64 [5, n_layers] of this step's statistics (NaN where not measured), then reset."""
        columns: dict[int, Tensor] = {i: _merge(calls) for i, calls in self._calls.items()}
        self._calls = {}
        device = next(iter(columns.values())).device if columns else None
        out = torch.full((N_METRICS, len(self.layers)), _NAN, dtype=torch.float64, device=device)
        if columns:
            index = torch.tensor(list(columns), dtype=torch.long, device=device)
            out[:, index] = torch.stack(list(columns.values()), dim=1)
        return out

    def reset(self) -> None:
        self._calls = {}


def _merge(calls: list[_Call]) -> Tensor:
    """One layer's five statistics from its calls in a step (float64 [5])."""
    counts = torch.tensor([c.count for c in calls], dtype=torch.float64, device=calls[0].total.device)
    n = counts.sum()
    totals = torch.stack([c.total for c in calls])
    mean = totals.sum() / n
    call_means = totals / counts
    m2 = torch.stack([c.m2 for c in calls]).sum() + (counts * (call_means - mean).square()).sum()
    std = (m2.clamp(min=0) / n).sqrt()
    nan = torch.full_like(mean, _NAN)
    saturated = _fraction([c.saturated for c in calls], n, nan)
    nonzero = _fraction([c.nonzero for c in calls], n, nan)
    zero = 1 - nonzero
    dead = nan
    unit_maxes = [c.unit_max for c in calls]
    if unit_maxes[0] is not None and all(u.shape == unit_maxes[0].shape for u in unit_maxes):
        alive = unit_maxes[0]
        for other in unit_maxes[1:]:
            alive = torch.maximum(alive, other)
        dead = (alive == 0).double().mean()
    return torch.stack([mean, std, saturated, zero, dead])


def _fraction(counts: list[Tensor | None], n: Tensor, nan: Tensor) -> Tensor:
    if counts[0] is None:
        return nan
    return torch.stack(counts).double().sum() / n
