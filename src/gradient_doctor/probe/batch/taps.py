"""Hooks that measure, per layer, the backward signal δ at its input and output, its forward output scale and,
for activation modules, the saturated fraction and the per-unit maxima (for dead units).

    >>> with LayerTaps(layers) as taps:
    ...     loss = model(x).sum()
    ...     torch.autograd.grad(loss, params)
    >>> taps.order, taps.delta_out_sq[0]  # forward (first-call) order; float64 ‖δ_out‖², summed over calls

Only tensor hooks on module inputs and outputs are used (full backward module hooks reject in-place ops such as
`ReLU(inplace=True)`). A forward pre-hook hands the module an alias (`x.view_as(x)`) of each input requiring grad
and hooks it, so δ_in is the gradient that flows through *this* module even when the input also feeds a skip
connection. In-place modules get their input itself, hooked before they modify it: a tensor hook registered
before an in-place change receives the gradient with respect to the value before the change. Every hook handle
is removed on exit, also after an exception.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..hooks import Hooks
from ..keras_layers import tap_activation
from ..layers import Layer, saturated_count, unit_dim, unit_maxima
from ..tensor_stats import flat_view, squares_on_host, sum_of_squares


class LayerTaps(Hooks):
    """Accumulates float64 squared norms per layer (on the device; read once at the end)."""

    def __init__(self, layers: list[Layer]):
        super().__init__()
        self.layers = layers
        self.order: list[int] = []  # layer indices in first-call order
        self.delta_in_sq: dict[int, list[Tensor | float]] = {}
        self.delta_out_sq: dict[int, list[Tensor | float]] = {}
        self.delta_mid_sq: dict[int, list[Tensor | float]] = {}  # at the input of an activation within the layer
        self.out_sq: dict[int, list[Tensor | float]] = {}
        self.out_numel: dict[int, int] = {}
        self.in_sq: dict[int, list[Tensor | float]] = {}  # forward input: its first floating-point tensor argument
        self.in_numel: dict[int, int] = {}
        self.samples: dict[int, int] = {}  # outputs per unit: positions × examples
        self.saturated: dict[int, list[Tensor]] = {}  # saturating activations: count of saturated outputs
        self.unit_max: dict[int, Tensor | None] = {}  # rectifiers: max |y| per unit over all calls (None: shapes vary)

    def _register(self, handles: list) -> None:
        """A forward pre-hook and a forward hook on every layer (removed on exit by Hooks); a weight layer that
        applies its activation itself (Keras `activation=`) has that activation tapped for δ at its input."""
        for i, layer in enumerate(self.layers):
            handles.append(layer.module.register_forward_pre_hook(self._pre_hook(i)))
            handles.append(layer.module.register_forward_hook(self._post_hook(i)))
            fused = tap_activation(layer.module, self._accumulate(self.delta_mid_sq, i)) if layer.params else None
            if fused is not None:
                handles.append(fused)

    def _pre_hook(self, index: int):
        inplace = bool(getattr(self.layers[index].module, "inplace", False))

        def hook(module, args):
            if not torch.is_grad_enabled():
                return None
            first = next((v for v in args if isinstance(v, Tensor) and v.is_floating_point()), None)
            if first is not None:
                self.in_sq.setdefault(index, []).append(sum_sq(first))
                self.in_numel[index] = self.in_numel.get(index, 0) + first.numel()
            aliases: dict[int, Tensor] = {}
            for value in args:
                if _differentiable(value) and id(value) not in aliases:
                    alias = value if inplace else value.view_as(value)
                    alias.register_hook(self._accumulate(self.delta_in_sq, index))
                    aliases[id(value)] = alias
            if not aliases or inplace:
                return None
            return tuple(aliases.get(id(value), value) for value in args)

        return hook

    def _post_hook(self, index: int):
        def hook(module, args, output):
            if not torch.is_grad_enabled():
                return
            tensor = _first_tensor(output)
            if tensor is None:
                return
            if index not in self.out_numel:
                self.order.append(index)
                self.out_numel[index] = 0
                self.samples[index] = 0
            values = tensor.detach()
            self.out_sq.setdefault(index, []).append(sum_sq(values))
            self.out_numel[index] += values.numel()
            if values.numel():
                self.samples[index] += values.numel() // values.shape[unit_dim(values)] if values.dim() else 1
            if self.layers[index].activation is not None and values.numel():
                self._activation(index, values)
            if tensor.requires_grad:
                tensor.register_hook(self._accumulate(self.delta_out_sq, index))

        return hook

    def _activation(self, index: int, values: Tensor) -> None:
        spec = self.layers[index].activation
        if spec.bounds is not None:  # saturated: within SATURATION_EPS of the range from a bound
            self.saturated.setdefault(index, []).append(saturated_count(values, spec.bounds))
        if spec.rectified:  # a unit is dead when it is zero on every sample of every call
            unit_max = unit_maxima(values)
            seen = self.unit_max.get(index, unit_max)
            same = seen is not None and seen.shape == unit_max.shape
            self.unit_max[index] = torch.maximum(seen, unit_max) if same else None

    @staticmethod
    def _accumulate(store: dict[int, list[Tensor | float]], index: int):
        def hook(grad: Tensor) -> None:
            store.setdefault(index, []).append(sum_sq(grad))

        return hook


def total(values: list[Tensor | float] | None) -> float:
    """The sum of accumulated scalars, 0-d device tensors or host floats (NaN when there were none): one host read
    per layer."""
    if not values:
        return float("nan")
    if isinstance(values[0], Tensor):
        return float(torch.stack(values).sum())
    return math.fsum(values)


def sum_sq(tensor: Tensor) -> Tensor | float:
    """Float64 sum of squares, also for vanishing (underflowing) or huge values: on an accelerator a 0-d tensor (read
    once per layer by `total`, no sync per call), on the CPU a host float (reading a CPU result is a memory read; a
    checkup takes four of these per layer, and no tensor is made for any)."""
    flat = flat_view(tensor)
    return squares_on_host([flat])[0] if flat.device.type == "cpu" else sum_of_squares([flat])[0]


def _differentiable(value) -> bool:
    return isinstance(value, Tensor) and value.requires_grad and value.is_floating_point()


def _first_tensor(output) -> Tensor | None:
    if isinstance(output, Tensor):
        return output if output.is_floating_point() else None
    if isinstance(output, (tuple, list)):
        for value in output:
            if isinstance(value, Tensor) and value.is_floating_point():
                return value
    return None
