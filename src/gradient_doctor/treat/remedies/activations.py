"""Swap saturating activation modules (and, for the leaky family, ReLU) for a non-saturating one.

    >>> model = swap_activation(model, "relu")          # Sigmoid, Tanh, Softsign, Hardsigmoid, Hardtanh -> ReLU
    >>> model = swap_activation(model, "leaky_relu")    # ... and ReLU -> LeakyReLU(0.01): units cannot die

Saturating activations pass at most sigmoid' <= 1/4 (tanh' <= 1) of the gradient per layer, and ~0 once
saturated (Glorot & Bengio 2010); rectifiers pass 1 on their active side (Nair & Hinton 2010; He et al. 2015), and
leaky ones (Maas et al. 2013), PReLU (He et al. 2015), ELU (Clevert et al. 2016), SELU (Klambauer et al. 2017),
GELU (Hendrycks & Gimpel 2016) and SiLU (Ramachandran et al. 2017) never give a unit an all-zero gradient.

Modules are replaced wherever they sit (nested containers, shared instances: one new module per old one), keeping
`inplace` where the new class has it, the old module's train/eval mode, and the model's device and dtype (PReLU's
slope). Activation FUNCTIONS called in `forward` (torch.sigmoid, F.relu, x.tanh(), ...) are not modules and cannot
be swapped: the source of the forward methods of the model's classes is scanned for them and one warning per call
names the classes and functions, so the code can be changed by hand.
"""

from __future__ import annotations

import inspect
import io
import textwrap
import tokenize
import warnings

from torch import nn

from ...errors import InvalidValue, NotApplicable
from ..surgery.modules import place_like, replace_module

TARGETS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "prelu": nn.PReLU, "elu": nn.ELU, "selu": nn.SELU,
    "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh,
}
# Saturating modules and the functional names of the same activations. ReLU6 (a Hardtanh subclass) counts as a
# rectifier: it dies below 0 like ReLU, and its cap at 6 is rarely reached.
_SATURATING: dict[type[nn.Module], tuple[str, ...]] = {
    nn.Sigmoid: ("sigmoid", "sigmoid_", "expit"),
    nn.Tanh: ("tanh", "tanh_"),
    nn.Softsign: ("softsign",),
    nn.Hardsigmoid: ("hardsigmoid",),
    nn.Hardtanh: ("hardtanh", "hardtanh_"),
}
_RECTIFIERS: dict[type[nn.Module], tuple[str, ...]] = {nn.ReLU: ("relu", "relu_"), nn.ReLU6: ("relu6",)}
# Targets that replace ReLU too: the "dead units" remedy. relu itself and tanh (a saturating one) do not.
_REPLACES_RELU = ("leaky_relu", "prelu", "elu", "selu", "gelu", "silu")


def swap_activation(model: nn.Module, to: str = "relu", *, negative_slope: float = 0.01) -> nn.Module:
    """Replace every saturating activation module of `model` (and every ReLU/ReLU6 when `to` is one of
    leaky_relu, prelu, elu, selu, gelu, silu) by a `to` module; modules already of kind `to` stay.

        >>> model = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Sequential(nn.Linear(4, 4), nn.ReLU()))
        >>> swap_activation(model, "leaky_relu")[1], model[2][1]
        (LeakyReLU(negative_slope=0.01), LeakyReLU(negative_slope=0.01))

    `to` is one of relu, leaky_relu, prelu, elu, selu, gelu, silu, tanh; `negative_slope` is the LeakyReLU's
    (PReLU starts at PyTorch's 0.25, He et al. 2015). Returns the model, or the new module when the model itself
    is an activation to replace. NotApplicable (model unchanged) when there is no module to replace.
    """
    if to not in TARGETS:
        raise InvalidValue(f"to must be one of {list(TARGETS)}; got {to!r}")
    target = TARGETS[to]
    kinds = {**_SATURATING, **(_RECTIFIERS if to in _REPLACES_RELU else {})}
    replaced = tuple(kind for kind in kinds if not issubclass(kind, target))
    functions = {name for kind in replaced for name in kinds[kind]}
    calls = _functional_calls(model, functions)
    if calls:
        warnings.warn(
            f"swap_activation: activation functions called in forward cannot be swapped by replacing modules; "
            f"change them to {to} in the code: {'; '.join(calls)}",
            stacklevel=2,
        )
    names = [
        name for name, module in model.named_modules(remove_duplicate=False)
        if _is_replaced(module, replaced, target)
    ]
    if not names:
        raise NotApplicable(
            f"swap_activation: the model has no {', '.join(kind.__name__ for kind in replaced)} module to replace "
            f"by {target.__name__}"
        )
    new_for: dict[int, nn.Module] = {}
    for name in names:
        old = model.get_submodule(name) if name else model
        if id(old) not in new_for:
            new_for[id(old)] = _new_activation(target, old, model, negative_slope)
        if not name:
            return new_for[id(old)]
        replace_module(model, name, new_for[id(old)])
    return model


def _is_replaced(module: nn.Module, replaced: tuple[type, ...], target: type) -> bool:
    if isinstance(module, target):
        return False
    if isinstance(module, nn.ReLU6):
        return nn.ReLU6 in replaced
    return isinstance(module, replaced)


def _new_activation(target: type[nn.Module], old: nn.Module, model: nn.Module, negative_slope: float) -> nn.Module:
    options = {"negative_slope": negative_slope} if target is nn.LeakyReLU else {}
    if "inplace" in inspect.signature(target).parameters:
        options["inplace"] = bool(getattr(old, "inplace", False))
    new = target(**options).train(old.training)
    return place_like(new, old if any(True for _ in old.parameters()) else model)


def _functional_calls(model: nn.Module, functions: set[str]) -> list[str]:
    """"Class.forward: name, name" for each class of the model (not torch's own) whose forward calls one of
    `functions` (a name followed by "(", as torch.sigmoid(x), F.relu(x), x.tanh()); unreadable sources skipped."""
    found = []
    for kind in dict.fromkeys(type(module) for module in model.modules()):
        forward = getattr(kind, "forward", None)
        if forward is None or getattr(forward, "__module__", "").startswith("torch."):
            continue
        try:
            source = textwrap.dedent(inspect.getsource(forward))
            tokens = [t for t in tokenize.generate_tokens(io.StringIO(source).readline)
                      if t.type not in (tokenize.NL, tokenize.NEWLINE, tokenize.COMMENT, tokenize.INDENT,
                                        tokenize.DEDENT)]
        except (OSError, TypeError, SyntaxError, tokenize.TokenError):
            continue
        called = {
            token.string
            for before, token, after in zip([None, *tokens], tokens, tokens[1:])
            if token.type == tokenize.NAME and token.string in functions and after.string == "("
            and (before is None or before.string != "def")
        }
        if called:
            found.append(f"{kind.__qualname__}.forward calls {', '.join(sorted(called))}")
    return found
