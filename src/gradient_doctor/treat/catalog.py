"""Remedy names (the catalog findings rank) bound to the functions that carry them out, with their cost class.

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

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..diagnosis.remedies import CATALOG
from .activations import swap_activation
from .depth import reduce_depth
from .init import critical_init, he_init, orthogonal_init, xavier_init
from .inputs import normalize_inputs
from .lsuv import lsuv_init
from .norm import insert_norm
from .pretrain import greedy_pretrain
from .recurrent import to_gru, to_lstm
from .recurrent_init import forget_gate_bias, identity_recurrent_init
from .residual import add_residual, fixup, rezero


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
        return forget_gate_bias(model, chrono_t_max=ctx.sequence_length)
    return forget_gate_bias(model)


def _swap_and_reinit(model: nn.Module, target: str) -> nn.Module:
    # Weights drawn for the old activation are wrong for the new one (a sigmoid net's gain-1 init halves a ReLU
    # net's signal every two layers): the layers feeding a new activation are re-drawn with its init.
    # the old modules stay referenced until the comparison is done: a freed module's id can be reused by a new one
    old = list(model.modules())
    before = {id(m) for m in old}
    model = swap_activation(model, target)
    new = [m for m in model.modules() if id(m) not in before]
    del old
    if not any(True for _ in model.parameters()):
        return model
    return xavier_init(model, feeding=new) if target == "tanh" else he_init(model, feeding=new)


_SURGERY: dict[str, tuple[int, Callable[[nn.Module, Context], nn.Module]]] = {
    "he_init": (0, lambda m, ctx: he_init(m)),
    "xavier_init": (0, lambda m, ctx: xavier_init(m)),
    "orthogonal_init": (0, lambda m, ctx: orthogonal_init(m)),
    "critical_init": (0, lambda m, ctx: critical_init(m)),
    "lsuv_init": (0, lambda m, ctx: lsuv_init(m, inputs=ctx.inputs)),
    "forget_gate_bias": (0, _forget_gate_bias),
    "identity_recurrent_init": (0, lambda m, ctx: identity_recurrent_init(m)),
    "fixup": (0, lambda m, ctx: fixup(m)),
    "rezero": (0, lambda m, ctx: rezero(m)),
    "normalize_inputs": (0, lambda m, ctx: normalize_inputs(m, inputs=ctx.inputs)),  # the data before the weights
    "insert_norm:batch": (2, lambda m, ctx: insert_norm(m, "batch")),
    "insert_norm:layer": (2, lambda m, ctx: insert_norm(m, "layer")),
    "add_residual": (2, lambda m, ctx: add_residual(m)),
    # a fresh gated layer forgets at its default gate biases (forget gate ~ 1/2 per step): set them as it is made
    "to_lstm": (2, lambda m, ctx: _forget_gate_bias(to_lstm(m), ctx)),
    "to_gru": (2, lambda m, ctx: _forget_gate_bias(to_gru(m), ctx)),
}
_OPT_IN: dict[str, tuple[int, Callable[[nn.Module, Context], nn.Module]]] = {
    "greedy_pretrain": (3, lambda m, ctx: greedy_pretrain(m, inputs=ctx.inputs, progress=False)),
    "reduce_depth": (3, lambda m, ctx: reduce_depth(m)),
}
TRAINING = ("clip_grad_norm", "clip_grad_value", "adaptive_clip")
ADVICE = ("increase_lr", "decrease_lr", "decrease_weight_decay", "check_inputs")


def lookup(name: str) -> Remedy:
    """The remedy called `name` in the catalog (diagnosis/remedies.py); ValueError naming the catalog otherwise.

        >>> lookup("insert_norm:layer").apply(model, Context())
    """
    if name not in CATALOG:
        raise ValueError(f"unknown remedy {name!r}; expected one of {sorted(CATALOG)}")
    if name.startswith("swap_activation:"):
        target = name.partition(":")[2]
        return Remedy(name, "surgery", 1, lambda m, ctx: _swap_and_reinit(m, target))
    if name in _SURGERY or name in _OPT_IN:
        cost, apply = _SURGERY.get(name) or _OPT_IN[name]
        return Remedy(name, "surgery", cost, apply, opt_in=name in _OPT_IN)
    if name in TRAINING:
        return Remedy(name, "training", 0)
    if name in ADVICE:
        return Remedy(name, "advice", 0)
    raise AssertionError(f"catalog name {name!r} has no remedy bound in treat/catalog.py")
