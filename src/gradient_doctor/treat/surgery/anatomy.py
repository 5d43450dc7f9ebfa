"""What the structural remedies need to know about modules: weight layers, norms, shape-preserving layers.

    >>> model = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> [name for name, _ in weight_layers(model)], output_layer(model)
    (['0', '2'], '2')
    >>> preserves_shape(model[0]), preserves_shape(model[2]), is_elementwise(model[1])
    (True, False, True)

Shapes are judged from the declared sizes (no inputs are needed): a Linear preserves the shape of its input when
in_features == out_features; a Conv when in_channels == out_channels, every stride is 1 and the padding keeps the
spatial size (`padding="same"`, or 2 * padding == dilation * (kernel_size - 1) in every dimension).
"""

from __future__ import annotations

from torch import nn

CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
CONV_TRANSPOSE = (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
WEIGHT_LAYERS = (nn.Linear, *CONV, *CONV_TRANSPOSE)

NORMS = tuple(
    kind for kind in (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.LayerNorm,
                      nn.GroupNorm, nn.LocalResponseNorm, getattr(nn, "RMSNorm", None))
    if kind is not None
)

# Modules that act on each entry (or each feature/channel) and keep the shape: they belong to the block of the
# weight layer they follow. Softmax-like modules and GLU (which halves a dimension) are deliberately absent.
_ELEMENTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Sigmoid, nn.Tanh, nn.Hardtanh, nn.Hardsigmoid, nn.Hardswish, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.Softshrink, nn.Hardshrink, nn.Threshold, nn.LogSigmoid, nn.Identity,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout,
    *NORMS,
)


def weight_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, module) of every Linear, Conv and ConvTranspose of `model`, in registration order."""
    return [(name, module) for name, module in model.named_modules() if isinstance(module, WEIGHT_LAYERS)]


def output_layer(model: nn.Module) -> str | None:
    """The qualified name of the model's output layer: its last weight layer in registration order (the order of
    `__init__`, which is the forward order for Sequential models); None when it has no weight layer."""
    layers = weight_layers(model)
    return layers[-1][0] if layers else None


def is_norm(module: nn.Module) -> bool:
    return isinstance(module, NORMS)


def is_elementwise(module: nn.Module) -> bool:
    """An activation, dropout or normalisation module: it keeps the shape of its input."""
    return isinstance(module, _ELEMENTWISE)


def is_plain_sequential(module: nn.Module) -> bool:
    """An nn.Sequential (or a subclass) whose forward is Sequential's own: it calls its children in order."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def spatial_dims(layer: nn.Module) -> int:
    """0 for a Linear, 1/2/3 for a Conv or ConvTranspose of that many spatial dimensions."""
    return 0 if isinstance(layer, nn.Linear) else len(layer.kernel_size)


def out_size(layer: nn.Module) -> int:
    """Features (Linear) or channels (Conv) of a weight layer's output."""
    return layer.out_features if isinstance(layer, nn.Linear) else layer.out_channels


def preserves_shape(layer: nn.Module) -> bool:
    """Whether a Linear or Conv layer's output has the shape of its input, judged from its declared sizes."""
    if isinstance(layer, nn.Linear):
        return layer.in_features == layer.out_features
    if not isinstance(layer, CONV) or layer.in_channels != layer.out_channels:
        return False
    if any(s != 1 for s in layer.stride):
        return False
    if layer.padding == "same":
        return True
    padding = (0,) * len(layer.kernel_size) if layer.padding == "valid" else layer.padding
    return all(2 * p == d * (k - 1) for p, d, k in zip(padding, layer.dilation, layer.kernel_size))
