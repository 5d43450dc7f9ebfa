"""Which layers normalise: torch's norm classes, classes registered with `register_normalization`, and any other
layer whose output does not change when its input is scaled, measured on the batch.

    >>> with NormCandidates(layers) as candidates:
    ...     model(x)
    >>> candidates.scale_invariant()          # names of the layers that behave as normalisers on this batch
    {'model.layers.0.input_layernorm', ...}
    >>> gd.register_normalization(MyNorm)     # a normaliser the behavioural test cannot call on its own

Every model family ships its own norm class (LlamaRMSNorm, T5LayerNorm, nanoGPT's LayerNorm with an optional bias,
...), so a normaliser is recognised by what it does: called again on its own first input, and on that input times
SCALE, its output changes by less than TOLERANCE (relative L2). A linear map changes by SCALE - 1 = 300 %. Only
candidates are tested: layers with no child layers whose own parameters are all vectors (a norm's per-feature gain
and shift). The re-calls run under no_grad inside checkup's `preserved(model)`, so buffers a custom batch norm
updates are restored.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ...errors import InvalidType
from ..hooks import Hooks
from ..layers import Layer

#: torch's normalisation layers: they reset the forward scale by construction.
KNOWN: list[type[nn.Module]] = [
    getattr(nn, name) for name in ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm", "LayerNorm",
                                   "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d", "RMSNorm")
    if hasattr(nn, name)
]
#: How much the input is scaled, and the largest relative change of the output that still counts as invariant: a
#: norm's epsilon moves its output by about eps/(2 var); at LayerNorm's eps 1e-5 and an input RMS of 0.01 (a small
#: embedding) that is 5 %.
SCALE, TOLERANCE = 4.0, 0.1


def register_normalization(*classes: type[nn.Module]) -> None:
    """Count `classes` (and their subclasses) as normalisation layers in every checkup from now on.

    >>> gd.register_normalization(ScaleNorm)
    """
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
            raise InvalidType(f"register_normalization expects nn.Module subclasses; got {cls!r}")
        if cls not in KNOWN:
            KNOWN.append(cls)


def is_known(module: nn.Module) -> bool:
    """Whether `module` is of a known (torch's or registered) normalisation class."""
    return isinstance(module, tuple(KNOWN))


def is_candidate(module: nn.Module) -> bool:
    """A layer that may be a normaliser of its own class: no parameters below it, and its own are all vectors."""
    own = list(module.parameters(recurse=False))
    return (bool(own) and all(p.dim() == 1 for p in own) and not is_known(module)
            and not any(True for child in module.children() for _ in child.parameters()))


class NormCandidates(Hooks):
    """Forward pre-hooks that keep (detached) the first floating-point input of each candidate layer."""

    def __init__(self, layers: list[Layer]):
        super().__init__()
        self.candidates = [layer for layer in layers if is_candidate(layer.module)]
        self.inputs: dict[str, Tensor] = {}

    def _register(self, handles: list) -> None:
        for layer in self.candidates:
            handles.append(layer.module.register_forward_pre_hook(self._keep(layer.name)))

    def _keep(self, name: str):
        def hook(module, args):
            x = args[0] if args else None
            if name not in self.inputs and isinstance(x, Tensor) and x.is_floating_point() and x.numel():
                self.inputs[name] = x.detach()

        return hook

    def scale_invariant(self) -> set[str]:
        """The candidates whose output is invariant to the scale of their input (see the module docstring)."""
        modules = {layer.name: layer.module for layer in self.candidates}
        return {name for name, x in self.inputs.items() if _invariant(modules[name], x)}


def _invariant(module: nn.Module, x: Tensor) -> bool:
    try:
        with torch.no_grad():
            y, scaled = module(x), module(x * SCALE)
    except Exception:  # a layer that needs more than its first input cannot be re-called alone: not judged
        return False
    if not (isinstance(y, Tensor) and isinstance(scaled, Tensor) and y.shape == scaled.shape):
        return False
    y, scaled = y.double(), scaled.double()
    size = torch.linalg.vector_norm(y)
    if not (torch.isfinite(size) and size > 0 and torch.isfinite(scaled).all()):
        return False
    return bool(torch.linalg.vector_norm(scaled - y) <= TOLERANCE * size)
