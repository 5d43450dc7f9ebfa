"""The architecture diff between a model and its treated copy: leaf modules by qualified name, as a unified diff.

    >>> architecture_diff(architecture(nn.Sequential(nn.Linear(2, 2), nn.Sigmoid())),
    ...                   architecture(nn.Sequential(nn.Linear(2, 2), nn.ReLU())))
    ['- 1: Sigmoid()', '+ 1: ReLU()']

Only the structure is compared (module types and their constructor arguments as `repr` shows them); changed
weights (a new init) are not a structural change and do not appear.
"""

from __future__ import annotations

import difflib

from torch import nn

from ..probe.keras_layers import is_keras, named_layers


def architecture(model: nn.Module) -> list[str]:
    """One line per leaf module (a module without children), "name: repr", in registration order; for a Keras model
    one per Keras layer, "name: Dense(activation=sigmoid)"."""
    if is_keras(model):
        return [f"{name}: {type(layer).__name__}({_activation(layer)})" for name, layer in named_layers(model)]
    return [f"{name or '(root)'}: {module!r}" for name, module in model.named_modules()
            if not any(True for _ in module.children())]


def _activation(layer: object) -> str:
    function = vars(layer).get("activation")
    return f"activation={function.__name__}" if callable(function) else ""


def architecture_diff(before: list[str], after: list[str]) -> list[str]:
    """The lines removed ("- ") and added ("+ ") from one `architecture` listing to another."""
    lines = difflib.unified_diff(before, after, lineterm="", n=0)
    return [f"{line[0]} {line[1:]}" for line in lines
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]
