"""Insert batch or layer normalisation after the Linear/Conv layers of a model's nn.Sequential containers.

    >>> model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> insert_norm(model, "batch")[0]
    Sequential(
      (0): Linear(in_features=3, out_features=8, bias=True)
      (1): FeatureBatchNorm(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)
    )

Normalising each layer's pre-activations keeps their scale fixed whatever the depth and init (batch norm,
Ioffe & Szegedy 2015; layer norm, Ba et al. 2016). The norm after a layer with `n` outputs is: for a Linear,
`FeatureBatchNorm(n)` (nn.BatchNorm1d over the last dimension, so (batch, time, n) inputs work too) or
`nn.LayerNorm(n)`; for a ConvNd/ConvTransposeNd, `nn.BatchNormNd(n)` or `nn.GroupNorm(1, n)` (layer norm over
channels and positions; nn.LayerNorm(n) would normalise the last spatial axis).

Which layers: every Linear/Conv that is a child of an nn.Sequential (at any depth), except the model's output layer
(its last weight layer) and layers already followed by a norm (before the next non-activation module). Layers held
as attributes and called from a custom `forward` are left alone: the remedy cannot see what that forward does
with them (a norm may already follow, the layer may be the output, `self.fc.weight` may be read directly).

State dict: the layer at `<seq>.<k>` is replaced by `Sequential(layer, norm)` at the same position, so its keys
move from `<seq>.<k>.<rest>` to `<seq>.<k>.0.<rest>`, the norm's are `<seq>.<k>.1.*`, and every other key and
position is unchanged.

Guard (Yang et al. 2019): batch norm in a deep network WITHOUT skip connections makes the gradient explode at
init, by sqrt(pi / (pi - 1)) ~= 1.21 per layer in norm for ReLU networks, however the weights are initialised.
So `kind="batch"` raises UnsafeRemedy on a model of more than MAX_PLAIN_DEPTH weight layers in which
treat.skips finds no skip connection, and only warns with `allow_without_skip=True`.
"""

from __future__ import annotations

import math
import warnings

from torch import nn

from ...errors import InvalidValue, NotApplicable, UnsafeRemedy
from ..surgery.anatomy import (
    WEIGHT_LAYERS,
    is_elementwise,
    is_norm,
    is_plain_sequential,
    out_size,
    output_layer,
    spatial_dims,
    weight_layers,
)
from ..surgery.inserted import FeatureBatchNorm
from ..surgery.modules import place_like
from ..surgery.skips import has_skip_connection

# Gradient growth per layer, in norm, of a batch-normalised ReLU network at init (Yang et al. 2019).
BATCH_NORM_GROWTH = math.sqrt(math.pi / (math.pi - 1))
# 1.21^10 ~= 7: up to 10 layers the first layer's gradient stays within an order of magnitude of the last's;
# at 20 layers it is ~45x larger.
MAX_PLAIN_DEPTH = 10

_BATCH_NORM = {0: FeatureBatchNorm, 1: nn.BatchNorm1d, 2: nn.BatchNorm2d, 3: nn.BatchNorm3d}


def insert_norm(model: nn.Module, kind: str = "batch", *, allow_without_skip: bool = False) -> nn.Module:
    """Insert a `kind` ("batch" or "layer") norm after every Linear/Conv child of an nn.Sequential, except the
    output layer and layers already followed by a norm. NotApplicable when there is no such layer; UnsafeRemedy
    for batch norm in a deep net without skip connections unless `allow_without_skip` (then a warning).

    >>> insert_norm(model, "layer")
    >>> insert_norm(deep_plain_mlp, "batch", allow_without_skip=True)   # warns: gradient explosion at init
    """
    if kind not in ("batch", "layer"):
        raise InvalidValue(f"insert_norm: kind must be 'batch' or 'layer'; got {kind!r}")
    targets = _targets(model)
    if not targets:
        raise NotApplicable(
            "insert_norm: the model has no Linear/Conv layer inside an nn.Sequential that is not the output layer "
            "and not already followed by a normalisation layer"
        )
    if kind == "batch":
        _guard(model, allow_without_skip)
    for container, k, layer in targets:
        norm = place_like(_norm_for(layer, kind), layer).train(layer.training)
        wrapped = nn.Sequential(layer, norm)
        wrapped.training = layer.training
        container[k] = wrapped
    return model


def _targets(model: nn.Module) -> list[tuple[nn.Sequential, int, nn.Module]]:
    """(container, position, layer) of every layer to normalise."""
    name = output_layer(model)
    output = model.get_submodule(name) if name is not None else None
    targets = []
    for _, container in model.named_modules():
        if not is_plain_sequential(container):
            continue
        children = list(container)
        for k, child in enumerate(children):
            if isinstance(child, WEIGHT_LAYERS) and child is not output and not _followed_by_norm(children, k):
                targets.append((container, k, child))
    return targets


def _followed_by_norm(children: list[nn.Module], k: int) -> bool:
    for after in children[k + 1:]:
        if not is_elementwise(after):
            return False
        if is_norm(after):
            return True
    return False


def _norm_for(layer: nn.Module, kind: str) -> nn.Module:
    size, dims = out_size(layer), spatial_dims(layer)
    if kind == "batch":
        return _BATCH_NORM[dims](size)
    return nn.LayerNorm(size) if dims == 0 else nn.GroupNorm(1, size)


def _guard(model: nn.Module, allow_without_skip: bool) -> None:
    depth = len(weight_layers(model))
    if depth <= MAX_PLAIN_DEPTH or has_skip_connection(model):
        return
    message = (
        f"insert_norm: batch norm in a {depth}-layer network without skip connections makes the gradient explode "
        f"at init (Yang et al. 2019: about x{BATCH_NORM_GROWTH:.2f} per layer in ReLU networks, "
        f"x{BATCH_NORM_GROWTH ** depth:.0f} over {depth} layers); add skip connections first (add_residual), "
        "use insert_norm(model, 'layer'), or pass allow_without_skip=True to insert batch norm anyway"
    )
    if not allow_without_skip:
        raise UnsafeRemedy(message)
    warnings.warn(message, stacklevel=3)
