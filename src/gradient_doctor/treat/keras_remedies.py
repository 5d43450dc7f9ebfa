"""The remedies `gd.treat` carries out on a Keras model (torch backend): the catalog's names, on Keras layers.

    >>> apply = keras_remedy("swap_activation:relu")
    >>> model = apply(model)    # sigmoid/tanh activation= and Activation layers -> relu, their kernels He-drawn

* **he_init, xavier_init, orthogonal_init** re-draw the kernel of every layer that has one (Dense, Conv*,
  EinsumDense) with Keras's `he_normal`, `glorot_normal` or `orthogonal` (gain √2 before a ReLU-family activation,
  else 1) and zero its bias. The initializers are seeded from torch's generator, so `gd.treat`'s seed fixes them.
* **swap_activation:<to>** sets the activation of Dense/Conv layers (`activation=`) and of Activation layers:
  saturating ones (sigmoid, tanh, softsign, hard_sigmoid, hard_tanh), and relu/relu6 too for leaky_relu, elu,
  selu, gelu and silu, as for torch models; the layers feeding a new activation are re-drawn (He, Glorot for tanh).
* **insert_norm:batch|layer** rebuilds a `keras.Sequential` with BatchNormalization (LayerNormalization, or
  GroupNormalization(groups=1) after a convolution) after each weight layer but the last, before its activation:
  `Dense(activation=a)` becomes Dense, the norm, `Activation(a)`. Batch norm over more than MAX_PLAIN_DEPTH layers
  without skip connections is unsafe (Yang et al. 2019), as for torch models. The new model needs `compile`.

Every other remedy raises NotApplicable, "not applicable to Keras models: ...", and `gd.treat` rolls it back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from ..errors import NotApplicable, UnsafeRemedy
from ..probe.keras_layers import FUNCTION_SPECS, named_layers
from .remedies.norm import MAX_PLAIN_DEPTH

KerasRemedy = Callable[[Any], Any]
_SATURATING = ("sigmoid", "tanh", "softsign", "hard_sigmoid", "hard_tanh")
_RECTIFIERS = ("relu", "relu6")
_REPLACES_RELU = ("leaky_relu", "elu", "selu", "gelu", "silu")
_TARGETS = ("relu", "tanh", *_REPLACES_RELU)
#: init remedy -> (keras.initializers class, whether its gain follows the activation)
_INITS = {"he_init": ("HeNormal", False), "xavier_init": ("GlorotNormal", False),
          "orthogonal_init": ("Orthogonal", True)}
KERAS_REMEDIES = ("he_init", "xavier_init", "orthogonal_init", *(f"swap_activation:{t}" for t in _TARGETS),
                  "insert_norm:batch", "insert_norm:layer")


def keras_remedy(name: str) -> KerasRemedy:
    """The Keras form of the remedy `name` (a catalog name), as `apply(model) -> model`; for a remedy with no Keras
    form, a function raising NotApplicable that names the ones there are."""
    base, _, arg = name.partition(":")
    if base in _INITS:
        return lambda model: _initialise(model, *_INITS[base])
    if base == "swap_activation" and arg in _TARGETS:
        return lambda model: swap_activation(model, arg)
    if base == "insert_norm":
        return lambda model: insert_norm(model, arg)

    def not_applicable(model: Any) -> Any:
        raise NotApplicable(f"not applicable to Keras models: {name} acts on torch modules; on Keras layers "
                            f"gd.treat has {', '.join(KERAS_REMEDIES)}")

    return not_applicable


def swap_activation(model: Any, to: str) -> Any:
    """Set every saturating activation (and relu/relu6 for the leaky family) to `to`; re-draw the layers feeding
    them with He init (Glorot for tanh)."""
    import keras

    replaced = _SATURATING + (_RECTIFIERS if to in _REPLACES_RELU else ())
    feeding, last_weights = [], None
    for _, layer in named_layers(model):
        if _kernel(layer) is not None:
            last_weights = layer
        activation = vars(layer).get("activation")
        if getattr(activation, "__name__", None) in replaced and activation.__name__ != to:
            layer.activation = keras.activations.get(to)
            feeder = layer if _kernel(layer) is not None else last_weights
            if feeder is not None and feeder not in feeding:
                feeding.append(feeder)
    if not feeding:
        raise NotApplicable(f"swap_activation: the Keras model has no {', '.join(replaced)} activation (activation= "
                            f"of a Dense/Conv layer, or an Activation layer) after a weight layer to replace by {to}")
    for layer in feeding:
        _draw(layer, keras.initializers.GlorotNormal if to == "tanh" else keras.initializers.HeNormal)
    return model


def insert_norm(model: Any, kind: str) -> Any:
    """A new keras.Sequential with a norm after each weight layer but the last (see the module's docstring)."""
    import keras

    if not isinstance(model, keras.Sequential):
        raise NotApplicable(f"not applicable to Keras models: insert_norm:{kind} rebuilds a keras.Sequential; this is "
                            f"a {type(model).__name__}: add BatchNormalization/LayerNormalization layers by hand")
    layers = model.layers
    norms = (keras.layers.BatchNormalization, keras.layers.LayerNormalization, keras.layers.GroupNormalization)
    weighted = [i for i, layer in enumerate(layers) if _kernel(layer) is not None]
    chosen = [i for i in weighted[:-1] if not (i + 1 < len(layers) and isinstance(layers[i + 1], norms))]
    if not chosen:
        raise NotApplicable(f"insert_norm:{kind}: the Keras model has no weight layer but the output layer that is "
                            "not already followed by a normalisation layer")
    if kind == "batch" and len(weighted) > MAX_PLAIN_DEPTH:
        raise UnsafeRemedy(f"insert_norm:batch: {len(weighted)} weight layers in a keras.Sequential (no skip "
                           f"connections): batch norm makes the gradient explode at init by about 1.21x per layer "
                           f"(Yang et al. 2019); at most {MAX_PLAIN_DEPTH} are treated")
    rebuilt = [keras.Input(shape=model.input_shape[1:])]
    for i, layer in enumerate(layers):
        rebuilt.append(layer)
        if i not in chosen:
            continue
        activation = layer.activation
        layer.activation = keras.activations.linear
        rebuilt.append(_norm(keras, kind, layer))
        if activation.__name__ != "linear":
            rebuilt.append(keras.layers.Activation(activation, name=f"{layer.name}_activation"))
    return keras.Sequential(rebuilt, name=model.name)


def _norm(keras: Any, kind: str, layer: Any) -> Any:
    name = f"{layer.name}_norm"
    if kind == "batch":
        return keras.layers.BatchNormalization(name=name)
    if "Conv" in type(layer).__name__:  # over channels and positions, as torch's GroupNorm(1, n)
        return keras.layers.GroupNormalization(groups=1, name=name)
    return keras.layers.LayerNormalization(name=name)


def _initialise(model: Any, initializer: str, relu_gain: bool) -> Any:
    """Re-draw every kernel with `initializer` (its gain √2 before a ReLU-family activation when `relu_gain`) and
    zero every bias."""
    import keras

    layers = [layer for _, layer in named_layers(model) if _kernel(layer) is not None]
    if not layers:
        raise NotApplicable("the Keras model has no layer with a kernel (Dense, Conv*, EinsumDense) to initialise")
    for layer in layers:
        spec = FUNCTION_SPECS.get(getattr(vars(layer).get("activation"), "__name__", ""))
        rectified = spec is not None and spec.bounds is None
        cls = getattr(keras.initializers, initializer)
        _draw(layer, (lambda seed: cls(gain=math.sqrt(2) if rectified else 1.0, seed=seed)) if relu_gain else cls)
    return model



def _draw(layer: Any, initializer: Callable[..., Any]) -> None:
    """The layer's kernel from `initializer(seed=...)` (seeded from torch's generator), its bias zero."""
    seed = int(torch.randint(0, 2**31 - 1, ()))
    kernel = _kernel(layer)
    kernel.assign(initializer(seed=seed)(tuple(kernel.shape), dtype=kernel.dtype))
    bias = getattr(layer, "bias", None)
    if bias is not None:
        bias.assign(torch.zeros(tuple(bias.shape), dtype=bias.value.dtype, device=bias.value.device))


def _kernel(layer: Any) -> Any:
    """The layer's kernel variable (Dense, Conv*, EinsumDense), None for other layers (recurrent cells included)."""
    return None if hasattr(layer, "cell") else getattr(layer, "kernel", None)
