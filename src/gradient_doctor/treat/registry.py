"""Remedy names (the remedy table, catalog.py) bound to the functions of `gd.remedies` that carry them out.

    >>> remedy = lookup("swap_activation:relu")
    >>> remedy.kind, remedy.cost
    ('surgery', 1)
    >>> model = remedy.apply(model, Context(inputs=x))

`gd.treat` tries surgery cheapest-first: standardising the inputs and re-initialising (cost 0) before swapping
modules (1) before adding modules (2) before training anything (3); within a cost, in the order the findings rank
them (an `input_scale` finding comes before the others, so off-scale inputs are fixed before any init is fitted to
them). `opt_in` remedies (`reduce_depth`, `greedy_pretrain`) run only when named
explicitly, never because a finding ranked them. An activation swap re-draws the weights with the init made
for the new activation in the layers that feed it (He for the ReLU family, Xavier for tanh); `to_lstm`/`to_gru` set the new gates' biases
(`forget_gate_bias`, chrono init over the measured sequence length). Training-loop remedies (gradient clipping) cannot be verified
on one batch: `Treatment.rebuild_optimizer` attaches them. Advice (learning rate, weight decay) is reported.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..catalog import ENTRIES
from ..errors import InvalidValue
from ..probe.keras_layers import is_keras
from . import remedies
from .keras_remedies import keras_remedy


@dataclass(frozen=True)
class Context:
    """What a remedy may use beyond the model: the batch, and the longest sequence checkup measured."""

    inputs: Any = None
    sequence_length: int | None = None


@dataclass(frozen=True)
class Remedy:
    name: str
    kind: str  # "surgery" (verified by checkup), "training" (attached to the optimizer) or "advice"
    cost: int  # 0 init, 1 module swap, 2 added modules, 3 training
    apply: Callable[[nn.Module, Context], nn.Module] | None = None
    opt_in: bool = False


def _forget_gate_bias(model: nn.Module, ctx: Context) -> nn.Module:
    # Forget gates must hold for the whole sequence: chrono init (Tallec & Ollivier 2018) spreads the
    # characteristic times over [1, T]; without a measured T, the classic bias 1 (Jozefowicz et al. 2015).
    if ctx.sequence_length and ctx.sequence_length > 2:
        return remedies.forget_gate_bias(model, chrono_t_max=ctx.sequence_length)
    return remedies.forget_gate_bias(model)


def _swap_and_reinit(model: nn.Module, target: str) -> nn.Module:
    # Weights drawn for the old activation are wrong for the new one (a sigmoid net's gain-1 init halves a ReLU
    # net's signal every two layers): the layers feeding a new activation are re-drawn with its init.
    # the old modules stay referenced until the comparison is done: a freed module's id can be reused by a new one
    old = list(model.modules())
    before = {id(m) for m in old}
    model = remedies.swap_activation(model, target)
    new = [m for m in model.modules() if id(m) not in before]
    del old
    if not any(True for _ in model.parameters()):
        return model
    return remedies.xavier_init(model, feeding=new) if target == "tanh" else remedies.he_init(model, feeding=new)


#: Surgery whose call is more than `function(model[, "arg"][, inputs=...])`.
_ADAPTED: dict[str, Callable[[nn.Module, Context], nn.Module]] = {
    "forget_gate_bias": _forget_gate_bias,
    # a fresh gated layer forgets at its default gate biases (forget gate ~ 1/2 per step): set them as it is made
    "to_lstm": lambda m, ctx: _forget_gate_bias(remedies.to_lstm(m), ctx),
    "to_gru": lambda m, ctx: _forget_gate_bias(remedies.to_gru(m), ctx),
    "swap_activation": lambda m, ctx, target: _swap_and_reinit(m, target),
    "greedy_pretrain": lambda m, ctx: remedies.greedy_pretrain(m, inputs=ctx.inputs, progress=False),
}


def lookup(name: str) -> Remedy:
    """The remedy called `name` in the remedy table (catalog.py); ValueError naming the table otherwise.

        >>> lookup("insert_norm:layer").apply(model, Context())
    """
    entry = ENTRIES.get(name)
    if entry is None:
        raise InvalidValue(f"unknown remedy {name!r}; expected one of {sorted(ENTRIES)}")
    if entry.kind != "surgery":
        return Remedy(name, entry.kind, 0)
    return Remedy(name, "surgery", entry.cost, _bound(name), opt_in=entry.opt_in)


def _bound(name: str) -> Callable[[nn.Module, Context], nn.Module]:
    """`name` as `apply(model, context)`: on a Keras model its Keras form (treat/keras_remedies.py), else the torch
    one (`_torch_bound`)."""
    torch_apply, keras_apply = _torch_bound(name), keras_remedy(name)
    return lambda m, ctx: keras_apply(m) if is_keras(m) else torch_apply(m, ctx)


def _torch_bound(name: str) -> Callable[[nn.Module, Context], nn.Module]:
    """`name` ("function" or "function:arg") as `apply(model, context)`: the adapted call, else the function of
    that name in `gd.remedies`, given the batch when it takes `inputs`."""
    base, _, arg = name.partition(":")
    args = (arg,) if arg else ()
    if base in _ADAPTED:
        adapted = _ADAPTED[base]
        return lambda m, ctx: adapted(m, ctx, *args)
    function = getattr(remedies, base)
    if "inputs" in inspect.signature(function).parameters:
        return lambda m, ctx: function(m, *args, inputs=ctx.inputs)
    return lambda m, ctx: function(m, *args)
