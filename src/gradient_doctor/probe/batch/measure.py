"""One measured batch: forward, backward (without touching `.grad`), per-layer statistics and the time axis.

    >>> m = measure(model, x, targets=None, loss_fn=None, trials=1, seed=0)
    >>> m.layers[0].delta_out, m.budget.end_to_end, m.recurrent
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ...errors import CheckupError
from ..layers import ActivationSpec, Layer, discover
from ..time import RECURRENT, SequenceInputs, time_profile
from .budget import gradient_budget
from .calling import Inputs, call_model, detached_inputs, input_leaves, make_loss
from .measurement import LayerStats, Measurement
from .normalizers import NormCandidates, is_known
from .taps import LayerTaps, sum_sq, total


def measure(
    model: nn.Module, inputs: Inputs, targets: Any, loss_fn: Callable | None, trials: int, seed: int
) -> Measurement:
    """Run `trials` forward/backward passes (readout seeds seed, seed+1, ...) and summarise them."""
    layers, params = discover(model)
    tensors = [p.tensor for p in params]
    trainable = [i for i, t in enumerate(tensors) if t.requires_grad]
    grad_sq: dict[int, list[Tensor | float]] = {}  # parameter index -> squared norms, one per trial
    losses, source = [], "readout"
    with LayerTaps(layers) as taps, SequenceInputs(model) as sequences, NormCandidates(layers) as norms:
        for trial in range(trials):
            batch = detached_inputs(inputs)
            with torch.enable_grad():
                loss, source = make_loss(call_model(model, batch), targets, loss_fn, seed + trial)
                wrt = [tensors[i] for i in trainable] + input_leaves(batch)
                grads = torch.autograd.grad(loss, wrt, allow_unused=True)
            for i, grad in zip(trainable, grads):
                if grad is not None:
                    grad_sq.setdefault(i, []).append(sum_sq(grad))
            losses.append(loss.detach().double())
    if not taps.order:
        raise CheckupError(
            "expected the forward pass to call at least one layer (a module with parameters, or an activation "
            "module) with grad enabled; none was called"
        )
    if not any(taps.out_numel.get(i) for i in taps.order):
        raise CheckupError(
            "expected a batch with at least one sample; every layer's output was empty (inputs of shape "
            f"{_shapes(inputs)}), so there is no gradient to measure"
        )
    normalizing = norms.scale_invariant()
    stats = [_layer_stats(layers[i], i, taps, grad_sq, tensors, trials, normalizing) for i in taps.order]
    recurrent = [time_profile(s, seed) for s in sequences.captured]
    loss = float(torch.stack(losses).mean())
    return Measurement(stats, gradient_budget(stats), recurrent, source, loss, trials)


def _layer_stats(layer: Layer, index: int, taps: LayerTaps, grad_sq: dict[int, list[Tensor | float]],
                 tensors: list[Tensor], trials: int, normalizing: set[str]) -> LayerStats:
    own = [tensors[p] for p in layer.params]
    weight_sq = [float(sum_sq(t)) for t in own]
    layer_grads = [g for p in layer.params for g in grad_sq.get(p, [])]
    grad = [total(layer_grads)] if layer_grads else []  # empty: no trainable parameter got a gradient
    out_sq, out_n = total(taps.out_sq[index]), taps.out_numel[index]
    in_sq, in_n = total(taps.in_sq.get(index)), taps.in_numel.get(index, 0)
    delta_in, delta_out = taps.delta_in_sq.get(index), taps.delta_out_sq.get(index)
    measured_deltas = [total(d) for d in (delta_in, delta_out) if d]
    nonfinite = tuple(where for where, values in (("inputs", [in_sq] if in_n else []), ("weights", weight_sq),
                                                  ("activations", [out_sq]), ("gradients", measured_deltas + grad))
                      if not all(math.isfinite(v) for v in values))
    spec = layer.activation
    role = "activation" if spec is not None and not own else "recurrent" if isinstance(layer.module, RECURRENT) \
        else "weights"
    return LayerStats(
        name=layer.name, kind=layer.kind, role=role,
        family=_family(spec) if spec is not None and role != "recurrent" else None,
        grad_norm=math.sqrt(grad[0]) if grad else math.nan,
        weight_norm=math.sqrt(sum(weight_sq)) if own else math.nan,
        delta_in=math.sqrt(total(delta_in)), delta_out=math.sqrt(total(delta_out)),
        rms_out=_rms(out_sq, out_n), rms_in=_rms(in_sq, in_n),
        normalizes=is_known(layer.module) or layer.name in normalizing,
        saturated_frac=total(taps.saturated.get(index)) / out_n if out_n else math.nan,
        dead_frac=_dead_frac(taps.unit_max.get(index)),
        samples_per_unit=taps.samples[index] / trials,  # every call is new data; every trial the same batch
        nonfinite=nonfinite,
        delta_mid=math.sqrt(total(taps.delta_mid_sq.get(index))),
    )


def _shapes(inputs: Inputs) -> str:
    """The shapes of the batch's tensors, e.g. "(0, 16)" or "[(0, 7), (0, 7)]"."""
    values = [inputs] if isinstance(inputs, Tensor) else inputs.values() if isinstance(inputs, dict) else inputs
    shapes = [str(tuple(v.shape)) for v in values if isinstance(v, Tensor)]
    return shapes[0] if len(shapes) == 1 else f"[{', '.join(shapes)}]"


def _rms(sum_of_squares: float, count: int) -> float:
    return math.sqrt(sum_of_squares / count) if count else math.nan


def _family(spec: ActivationSpec) -> str:
    if spec.rectified:
        return "rectifier"
    return "saturating" if spec.bounds is not None else "smooth"


def _dead_frac(unit_max: Tensor | None) -> float:
    return math.nan if unit_max is None else float((unit_max == 0).double().mean())
