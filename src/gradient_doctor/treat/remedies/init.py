"""Weight initialisation remedies: Xavier, He, orthogonal, and critical (edge of chaos) init.

    >>> model = he_init(model)              # ReLU nets: variance 2 / fan_in (He et al. 2015)
    >>> model = xavier_init(model)          # tanh/sigmoid nets (Glorot & Bengio 2010)
    >>> model = orthogonal_init(model)      # orthogonal weights (Saxe et al. 2014; Pennington et al. 2017)
    >>> model = critical_init(model)        # chi_1 = 1, delta-orthogonal convolutions (Xiao et al. 2018)
    >>> model = own_init(model)             # a transformers (or nanoGPT-style) model's own _init_weights again

Every init redraws, in place and on the parameters' own device and dtype, the weights of each nn.Linear,
nn.Conv1d/2d/3d, nn.ConvTranspose1d/2d/3d, recurrent module (nn.RNN/LSTM/GRU and their cells) and
nn.MultiheadAttention (query, key and value projections each on its own fans), and zeroes
their biases (critical_init draws feed-forward biases with its sigma_b). Normalisation layers, embeddings and other
modules are left as they are. The gain of a layer is that of the activation module registered after it
(`following.following_activations`, `following.nonlinearity_gain`). Weights are drawn per group of a grouped
convolution and per gate of a recurrent module (fans, gains and orthogonality per gate: sigmoid gates gain 1, the
tanh candidate 5/3), see `blocks`. Recurrent hidden-to-hidden weights are orthogonal with gain 1 in every init, so
that the recurrence starts as an isometry through time (Saxe et al. 2014; Le et al. 2015). Randomness comes from
torch's global RNG.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Collection

import torch
from torch import nn

from ...errors import InvalidValue, NotApplicable
from ..surgery.blocks import Block, weight_blocks
from ..surgery.draw import DISTRIBUTIONS, delta_orthogonal_, fans, orthogonal_, variance_
from ..surgery.following import leaky_slope, nonlinearity_gain
from ..surgery.mean_field import critical_point

_MODES = ("fan_in", "fan_out")


def xavier_init(model: nn.Module, *, distribution: str = "uniform", gain: float | None = 1.0,
                feeding: Collection[nn.Module] | None = None) -> nn.Module:
    """Xavier/Glorot init: weight variance gain^2 * 2 / (fan_in + fan_out) (Glorot & Bengio 2010).

        >>> xavier_init(nn.Sequential(nn.Linear(64, 64), nn.Tanh()), distribution="normal")

    `distribution` "uniform" draws U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out)), "normal" N(0, variance).
    `gain` 1 is the paper's init (and torch.nn.init.xavier_uniform_'s default); None takes each layer's gain from
    the activation that follows it (`calculate_gain`: tanh 5/3, sigmoid 1, ReLU sqrt(2), none 1). Not the default:
    measured on a 50-layer width-256 tanh MLP, gain 5/3 puts the net in the chaotic phase (sigma_w^2 ~ 2.8, the
    backward signal grows ~80x from the last layer to the first) while gain 1 keeps it within ~10x.
    `feeding`: re-draw only the layers whose outputs feed these activation modules (the rest keep their weights).
    """
    _check_choice("distribution", distribution, DISTRIBUTIONS)

    def draw(block: Block) -> None:
        fan_in, fan_out = fans(block.weight)
        scale = gain if gain is not None else nonlinearity_gain(block.activation)
        variance_(block.weight, scale * math.sqrt(2.0 / (fan_in + fan_out)), distribution)

    return _initialise(model, "xavier_init", draw, feeding)


def he_init(model: nn.Module, *, mode: str = "fan_in", distribution: str = "normal",
            feeding: Collection[nn.Module] | None = None) -> nn.Module:
    """He/Kaiming init: weight variance gain^2 / fan (He et al. 2015), gain from the activation that follows.

        >>> he_init(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)))   # 2/64, then 1/64

    ReLU sqrt(2), leaky ReLU (and PReLU, by its mean slope) sqrt(2 / (1 + a^2)), SELU 1 (LeCun init), tanh 5/3,
    sigmoid 1, no activation 1. `mode` "fan_in" preserves the forward variance, "fan_out" the backward one;
    `distribution` "normal" draws N(0, variance), "uniform" U(-a, a) with a = sqrt(3 * variance). `feeding`: re-draw
    only the layers whose outputs feed these activation modules (the rest keep their weights).
    """
    _check_choice("mode", mode, _MODES)
    _check_choice("distribution", distribution, DISTRIBUTIONS)

    def draw(block: Block) -> None:
        fan = fans(block.weight)[_MODES.index(mode)]
        variance_(block.weight, nonlinearity_gain(block.activation) / math.sqrt(fan), distribution)

    return _initialise(model, "he_init", draw, feeding)


def orthogonal_init(model: nn.Module, *, gain: float | None = None) -> nn.Module:
    """Orthogonal weights (Saxe et al. 2014), scaled by `gain` or, by default, the gain of the activation that
    follows each layer; convolution kernels are orthogonal over (out, in * kernel), as torch.nn.init.orthogonal_.

        >>> orthogonal_init(nn.Sequential(nn.Linear(64, 64), nn.ReLU()))    # W W^T = 2 I
    """

    def draw(block: Block) -> None:
        orthogonal_(block.weight, gain if gain is not None else nonlinearity_gain(block.activation))

    return _initialise(model, "orthogonal_init", draw)


def critical_init(model: nn.Module, *, bias_variance: float = 1e-5) -> nn.Module:
    """Init on the edge of chaos, chi_1 = 1 for the activation that follows each layer (Schoenholz et al. 2017),
    with orthogonal weights (dynamical isometry, Pennington et al. 2017): the backward signal neither vanishes
    nor explodes with depth.

        >>> critical_init(nn.Sequential(*[m for _ in range(50) for m in (nn.Linear(256, 256), nn.Tanh())]))

    Linear layers get sigma_w * an orthogonal matrix, convolutions a delta-orthogonal kernel (Xiao et al. 2018:
    zero but an orthogonal matrix at the spatial centre), biases N(0, sigma_b^2); (sigma_w, sigma_b) come from
    `mean_field.critical_point`. ReLU gives sigma_w^2 = 2, sigma_b = 0 (He); tanh with the default
    sigma_b^2 = 1e-5 gives sigma_w ~ 1.02, so the pre-activations stay small (q* ~ 0.02) where tanh is nearly
    linear and the input-output Jacobian is close to an isometry. Layers followed by no activation: sigma_w = 1,
    sigma_b = 0. Recurrent modules: orthogonal with gain 1 and zero biases.
    """
    if not bias_variance >= 0:
        raise InvalidValue(f"bias_variance must be >= 0; got {bias_variance!r}")
    solved: dict[tuple, tuple[float, float]] = {}

    def draw(block: Block) -> None:
        if block.role == "input":  # recurrent input weights: no mean-field fixed point to aim at
            orthogonal_(block.weight, 1.0)
            return
        key = (type(block.activation), repr(block.activation), leaky_slope(block.activation))
        if key not in solved:
            solved[key] = critical_point(block.activation, bias_variance)
        sigma_w, sigma_b = solved[key]
        (delta_orthogonal_ if block.weight.dim() > 2 else orthogonal_)(block.weight, sigma_w)
        if block.bias is not None:
            block.bias.normal_(0.0, sigma_b)

    return _initialise(model, "critical_init", draw)


def zero_biases(model: nn.Module) -> nn.Module:
    """Zero the biases of every block (see above), keep every weight: units that a negative bias holds below zero
    fire again, and the weights the user chose (a pretrained model, an identity recurrence) are not re-drawn.

        >>> zero_biases(nn.Sequential(nn.Linear(4, 4), nn.ReLU()))[0].bias.abs().sum()
        tensor(0., grad_fn=<SumBackward0>)
    """
    biases = [block.bias for block in weight_blocks(model) if block.bias is not None]
    if not any(bool(bias.any()) for bias in biases):
        raise NotApplicable("zero_biases: the model has no nonzero bias in a Linear, Conv, recurrent or attention "
                            "module")
    with torch.no_grad():
        for bias in biases:
            bias.zero_()
    return model


def own_init(model: nn.Module) -> nn.Module:
    """Draw the initialisation the architecture ships with again: every module that defines `_init_weights(module)`
    (transformers models; nanoGPT-style GPTs) applies it to its submodules, as its constructor did. A transformers
    model gets its config's `initializer_range` and its own special cases (GPT-2's scaled residual projections, T5's
    factors, Mamba's A and dt), which a generic scheme (He, Xavier, LSUV) does not restore.

        >>> own_init(GPT2LMHeadModel(GPT2Config(n_layer=2))).transformer.h[0].attn.c_attn.weight.std()
        tensor(0.0200, grad_fn=<StdBackward0>)

    NotApplicable when no module has one (plain PyTorch and torchvision models initialise in `__init__`).
    """
    owners = own_initialisers(model)
    if not owners:
        raise NotApplicable("own_init: no module of the model defines _init_weights(module) (a transformers or "
                            "nanoGPT-style model does)")
    with torch.no_grad():
        for owner in owners:
            owner.apply(owner._init_weights)
    return model


def own_initialisers(model: nn.Module) -> list[nn.Module]:
    """The outermost modules of `model` with an `_init_weights(module)` method (one positional parameter), the model
    itself first when it has one: the modules whose own init `own_init` applies.

        >>> own_initialisers(nn.Sequential(GPT2LMHeadModel(config), nn.Linear(4, 4)))   # [the GPT-2 model] only
    """
    found: list[nn.Module] = []
    inside: set[int] = set()
    for module in model.modules():
        if id(module) in inside:
            continue
        if _takes_one_module(getattr(module, "_init_weights", None)):
            found.append(module)
            inside.update(id(m) for m in module.modules())
    return found


def _takes_one_module(method: object) -> bool:
    """A bound method called as `method(module)`: exactly one required parameter, a positional one (a user's
    `_init_weights(self)` with none is another convention, not called)."""
    if not callable(method):
        return False
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    required = [p for p in parameters if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return len(required) == 1 and required[0].kind in (required[0].POSITIONAL_ONLY, required[0].POSITIONAL_OR_KEYWORD)


def _initialise(model: nn.Module, remedy: str, draw: Callable[[Block], None],
                feeding: Collection[nn.Module] | None = None) -> nn.Module:
    """Zero every bias, then apply `draw` to every block but the recurrent hidden-to-hidden ones, which are
    orthogonal with gain 1; with `feeding`, only the blocks whose activation is one of those modules."""
    blocks = weight_blocks(model)
    if not blocks:
        raise NotApplicable(
            f"{remedy}: the model has no nn.Linear, nn.Conv*, nn.ConvTranspose* or recurrent module to initialise"
        )
    if feeding is not None:
        wanted = {id(m) for m in feeding}
        blocks = [b for b in blocks if b.activation is not None and id(b.activation) in wanted]
    with torch.no_grad():
        for block in blocks:
            if block.bias is not None:
                block.bias.zero_()
            if block.role == "hidden":
                orthogonal_(block.weight, 1.0)
            else:
                draw(block)
    return model


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidValue(f"{name} must be one of {list(choices)}; got {value!r}")
