"""Skip connections as remedies: wrap shape-preserving blocks in residual (or highway) blocks, then ReZero/Fixup.

    >>> model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> model = add_residual(model)          # position 2 becomes Residual(Sequential(Linear(8, 8), ReLU())),
    >>> model[2].scale.item(), model[3]       # position 3 an Identity placeholder
    (0.0, Identity())
    >>> model = fixup(model)                 # Fixup scaling of every Residual branch (Zhang et al. 2019)

Identity paths let the gradient reach early layers without passing through every layer's Jacobian (He et al.
2016). A zero-initialised branch scale makes each block the identity at init (ReZero, Bachlechner et al. 2020;
SkipInit, De & Smith 2020); a highway block gates between the branch and its input (Srivastava et al. 2015).
The highway's carry path is not an exact identity: at init it passes 1 - sigmoid(-2) ~= 0.88 of its input per
block (0.88^17 ~= 0.11 over 17 blocks), so the residual form is the default.

State dict: the block's first position holds the wrapper, the block's other positions hold nn.Identity
placeholders, so every other module keeps its position and key; the key `<seq>.<k>.<rest>` of a wrapped module
becomes `<seq>.<start>.branch.<k - start>.<rest>` (the wrapper adds `<seq>.<start>.scale`, or the highway gate
`<seq>.<start>.gate.*`). With `branch_scale=0.0` the branch weights get exactly zero gradient on the first step;
only the scale does, and the branch learns once the scale has moved.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ...errors import InvalidValue, NotApplicable
from ..surgery.anatomy import WEIGHT_LAYERS, out_size, spatial_dims
from ..surgery.inserted import Highway, Residual
from ..surgery.modules import modules_of, place_like
from ..surgery.shape_blocks import shape_preserving_blocks

_PASS_THROUGH = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
                 nn.FeatureAlphaDropout)


def add_residual(model: nn.Module, *, branch_scale: float = 0.0, highway: bool = False) -> nn.Module:
    """Wrap every shape-preserving block (a Linear(d, d) or same-shape Conv and the activations, norms and
    dropouts after it, see treat.shape_blocks) of the model's nn.Sequential containers in a `Residual` computing
    x + scale * block(x), scale learnable and initialised to `branch_scale`; or, with `highway=True`, in a
    `Highway` block. The output layer is never wrapped. NotApplicable when there is no such block.

    >>> add_residual(model, branch_scale=0.1)      # SkipInit-style small scale instead of 0
    >>> add_residual(model, highway=True)          # y = T(x) f(x) + (1 - T(x)) x, gate bias -2
    """
    if highway and branch_scale != 0.0:
        raise InvalidValue(f"add_residual: a highway block has a gate, not a branch scale; got {branch_scale=}")
    blocks = shape_preserving_blocks(model)
    if not blocks:
        raise NotApplicable(
            "add_residual: the model has no shape-preserving block in an nn.Sequential to wrap (looked for a "
            "Linear with in_features == out_features, or a Conv with in_channels == out_channels, stride 1 and "
            "shape-keeping padding, other than the output layer)"
        )
    for block in blocks:
        branch = nn.Sequential(*block.members())
        wrapper = _highway(branch) if highway else Residual(branch, branch_scale)
        wrapper = place_like(wrapper, branch)
        wrapper.training = branch.training = block.container.training   # the new modules only; members keep theirs
        if highway:
            wrapper.gate.train(block.container.training)
        block.container[block.start] = wrapper
        for k in range(block.start + 1, block.stop):
            block.container[k] = nn.Identity()
    return model


def _highway(branch: nn.Sequential) -> Highway:
    first = next(m for m in branch.modules() if isinstance(m, WEIGHT_LAYERS))
    return Highway(branch, features=out_size(first), dims=spatial_dims(first))


def rezero(model: nn.Module) -> nn.Module:
    """Set the branch scale of every `Residual` wrapper to 0 (ReZero, Bachlechner et al. 2020): each block starts
    as the identity. NotApplicable without Residual wrappers (user-written residual blocks cannot be rescaled).

    >>> rezero(add_residual(model, branch_scale=1.0))
    """
    wrappers = _residual_wrappers(model, "rezero")
    with torch.no_grad():
        for wrapper in wrappers:
            wrapper.scale.zero_()
    if any(_branch_end_is_zero(wrapper.branch) for wrapper in wrappers):
        warnings.warn("rezero: a Residual branch ends in an all-zero weight layer (after fixup?): with scale 0 "
                      "neither the scale nor that branch gets a gradient", stacklevel=2)
    return model


def fixup(model: nn.Module) -> nn.Module:
    """Fixup scaling of every `Residual` branch (Zhang et al. 2019). With L the number of Residual wrappers and m
    the weight layers of a branch: every weight layer of the branch but the last is multiplied by L^(-1/(2m-2))
    (m >= 2; the current weights are taken as the "standard init" the paper scales), and the branch starts at 0:
    when only Identity/Dropout follow its last weight layer, that layer's weight and bias are zeroed and the scale
    set to 1 (Fixup); when an activation or norm follows it (the blocks `add_residual` makes end in one), a zero
    pre-activation would block the gradient (ReLU'(0) = 0 in PyTorch), so the layer is kept and the scale set to 0
    (ReZero's zero start) instead. Fixup's zero-initialised classifier is NOT applied: it would stop every
    gradient below it on the first step. NotApplicable without Residual wrappers.

    >>> fixup(model)     # model holds Residual(Sequential(Linear(d, d), ReLU(), Linear(d, d))) blocks
    """
    wrappers = _residual_wrappers(model, "fixup")
    depth = len(wrappers)
    with torch.no_grad():
        for wrapper in wrappers:
            layers = [m for m in wrapper.branch.modules() if isinstance(m, WEIGHT_LAYERS)]
            if not layers:
                continue
            if len(layers) > 1:
                factor = depth ** (-1.0 / (2 * len(layers) - 2))
                for layer in layers[:-1]:
                    layer.weight.mul_(factor)
            if _ends_in(wrapper.branch, layers[-1]):
                layers[-1].weight.zero_()
                if layers[-1].bias is not None:
                    layers[-1].bias.zero_()
                wrapper.scale.fill_(1.0)
            else:
                wrapper.scale.zero_()
    return model


def _residual_wrappers(model: nn.Module, remedy: str) -> list[Residual]:
    wrappers = [module for _, module in modules_of(model, Residual)]
    if not wrappers:
        raise NotApplicable(
            f"{remedy}: the model has no Residual wrapper (gradient_doctor.treat.surgery.inserted.Residual) to rescale; "
            "add_residual makes them"
        )
    return wrappers


def _leaves(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if not any(True for _ in m.children())]


def _ends_in(branch: nn.Module, layer: nn.Module) -> bool:
    """Whether only Identity/Dropout modules follow `layer` among the branch's leaves (forward = registration
    order, as in the Sequential branches add_residual makes)."""
    leaves = _leaves(branch)
    after = leaves[max(k for k, m in enumerate(leaves) if m is layer) + 1:]
    return all(isinstance(m, _PASS_THROUGH) for m in after)


def _branch_end_is_zero(branch: nn.Module) -> bool:
    layers = [m for m in branch.modules() if isinstance(m, WEIGHT_LAYERS)]
    return bool(layers) and not layers[-1].weight.any()
