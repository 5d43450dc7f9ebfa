"""Gradient clipping as an optimizer step pre-hook: every `optimizer.step()` clips first; removable.

    >>> clipper = gd.clip(optimizer, "norm", max_norm=1.0)     # or clip_grad_norm(optimizer, 1.0)
    >>> for x, y in loader:
    ...     optimizer.zero_grad(); loss_fn(model(x), y).backward(); optimizer.step()   # clipped
    >>> clipper.last_total_norm      # the step's global gradient norm before clipping (a device tensor)
    >>> clipper.remove()             # or: with gd.clip(optimizer, "agc", model=model): ...

Methods: "norm" rescales all gradients jointly when their global L2 norm exceeds `max_norm` (Pascanu et al. 2013);
"value" clamps every entry to [-clip_value, clip_value]; "agc" is adaptive gradient clipping (Brock et al. 2021):
for each unit i of each parameter W with gradient G (a row of a weight matrix, an output channel of a conv kernel,
i.e. a slice along dim 0 as PyTorch lays weights out; a bias or any vector as a whole),

    G_i <- clipping * max(||W_i||, eps) / ||G_i|| * G_i     when ||G_i|| / max(||W_i||, eps) > clipping,

with clipping = λ = 0.01 and eps = 1e-3 by default, as in the paper. The final classifier layer is excluded (the
paper finds clipping it hurts): by default the parameters of the last nn.Linear in the optimizer's parameter order
when `model` is given, else the last 2-D parameter in that order and the bias right after it (what a final
nn.Linear looks like in `model.parameters()` order). Pass `exclude=` (parameters, or a predicate on a parameter)
when the classifier is registered elsewhere, or `exclude=()` to clip everything.

Everything runs under torch.no_grad with foreach kernels where PyTorch has them ("agc" is a short loop of
kernels per parameter); no value is read back to the host, so clipping adds no device sync to a step.

Order with `gd.watch(model, optimizer=...)`: both are step pre-hooks of the same optimizer, and PyTorch runs
those in the order they were registered. Watch records the gradients it sees when its hook runs, so a clipper
created *before* `gd.watch` makes watch record the clipped gradients (what the optimizer applies); one created
*after* makes it record the raw gradients. With a GradScaler both see unscaled gradients (`scaler.step` unscales
before calling `optimizer.step`, and skips the step, hooks included, when the gradients are not finite).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
from torch import Tensor, nn

from ...errors import InvalidType, InvalidValue

Exclude = Iterable[Tensor] | Callable[[Tensor], bool] | None
_METHODS = ("norm", "value", "agc")


class Clipper:
    """A clipping step pre-hook on one optimizer; `remove()` it or use it as a context manager.

        >>> with clip_grad_norm(optimizer, max_norm=1.0) as clipper:
        ...     train()
        >>> clipper.last_total_norm     # tensor(3.2) on the gradients' device: the last step's norm before clipping

    An internal error (an unsupported gradient layout, a failing `exclude` predicate) never stops training: the
    clipper warns once and switches itself off (`disabled` becomes True); later steps go unclipped.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, method: str, clip: Callable[[list[Tensor]], Tensor]):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise InvalidType(f"clipping attaches to a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.method = method
        self.last_total_norm: Tensor | None = None
        self.disabled = False
        self._clip = clip
        self._handle = optimizer.register_step_pre_hook(self._hook)

    def remove(self) -> None:
        """Detach from the optimizer: later steps are not clipped."""
        self._handle.remove()

    def __enter__(self) -> Clipper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()

    def __repr__(self) -> str:
        return f"Clipper(method={self.method!r}{', disabled' if self.disabled else ''})"

    def _hook(self, optimizer: torch.optim.Optimizer, args: tuple, kwargs: dict) -> None:
        if self.disabled:
            return
        try:
            params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
            with torch.no_grad():
                self.last_total_norm = self._clip(params)
        except Exception as err:  # never crash training
            self.disabled = True
            warnings.warn(
                f"gradient-doctor: the {self.method} clipper hit an internal error and switched itself off; "
                f"training goes on without clipping. Error: {type(err).__name__}: {err}",
                RuntimeWarning,
                stacklevel=2,
            )


def clip(
    optimizer: torch.optim.Optimizer,
    method: str = "norm",
    *,
    max_norm: float = 1.0,
    clip_value: float | None = None,
    clipping: float = 0.01,
    eps: float = 1e-3,
    exclude: Exclude = None,
    model: nn.Module | None = None,
) -> Clipper:
    """Clip `optimizer`'s gradients before every step with `method` ("norm", "value" or "agc"); see the module.

        >>> clipper = gd.clip(optimizer, "agc", model=model)

    "norm" reads `max_norm`; "value" reads `clip_value` (default 1.0); "agc" reads `clipping`, `eps`, `exclude` and
    `model` (and refuses them for the other methods).
    """
    if method != "agc" and (exclude is not None or model is not None):
        raise InvalidValue(f"clip: exclude= and model= apply to method='agc' only, got method={method!r}")
    if method == "norm":
        return clip_grad_norm(optimizer, max_norm)
    if method == "value":
        return clip_grad_value(optimizer, 1.0 if clip_value is None else clip_value)
    if method == "agc":
        return adaptive_clip(optimizer, clipping, eps, exclude=exclude, model=model)
    raise InvalidValue(f"clip: method must be one of {', '.join(map(repr, _METHODS))}, got {method!r}")


def clip_grad_norm(optimizer: torch.optim.Optimizer, max_norm: float = 1.0) -> Clipper:
    """Rescale all gradients jointly so their global L2 norm is at most `max_norm` (Pascanu et al. 2013).

        >>> clipper = clip_grad_norm(optimizer, max_norm=1.0)
    """
    _check_positive("clip_grad_norm", "max_norm", max_norm)
    return Clipper(
        optimizer, "norm", lambda params: nn.utils.clip_grad_norm_(params, max_norm, foreach=None)
    )


def clip_grad_value(optimizer: torch.optim.Optimizer, clip_value: float = 1.0) -> Clipper:
    """Clamp every gradient entry to [-clip_value, clip_value].

        >>> clipper = clip_grad_value(optimizer, clip_value=0.5)
    """
    _check_positive("clip_grad_value", "clip_value", clip_value)

    def clip_values(params: list[Tensor]) -> Tensor:
        total = _total_norm([p.grad for p in params])
        nn.utils.clip_grad_value_(params, clip_value, foreach=None)
        return total

    return Clipper(optimizer, "value", clip_values)


def adaptive_clip(
    optimizer: torch.optim.Optimizer,
    clipping: float = 0.01,
    eps: float = 1e-3,
    *,
    exclude: Exclude = None,
    model: nn.Module | None = None,
) -> Clipper:
    """Adaptive gradient clipping, unit-wise ||G_i|| <= clipping * max(||W_i||, eps) (Brock et al. 2021).

        >>> clipper = adaptive_clip(optimizer, clipping=0.01, model=model)   # classifier = model's last nn.Linear
        >>> clipper = adaptive_clip(optimizer, exclude=model.head.parameters())

    `exclude` (parameters, or a predicate called on each parameter at every step) is left unclipped; by default the
    final classifier, resolved now from the optimizer's parameter order (see the module docstring).
    """
    _check_positive("adaptive_clip", "clipping", clipping)
    if eps < 0:
        raise InvalidValue(f"adaptive_clip: eps must be >= 0, got {eps!r}")
    if exclude is None:
        exclude = _classifier(optimizer, model)
    if callable(exclude):
        skip = exclude
    else:
        excluded = {id(p) for p in exclude}
        skip = lambda p: id(p) in excluded  # noqa: E731

    def clip_units(params: list[Tensor]) -> Tensor:
        total = _total_norm([p.grad for p in params])
        for p in params:
            if not skip(p):
                _clip_units(p, p.grad, clipping, eps)
        return total

    return Clipper(optimizer, "agc", clip_units)


def _clip_units(weight: Tensor, grad: Tensor, clipping: float, eps: float) -> None:
    """Scale `grad` in place, unit by unit, to norms of at most clipping * max(||W_i||, eps)."""
    limit = _unit_norms(weight).clamp_(min=eps).mul_(clipping)
    norms = _unit_norms(grad)
    scale = torch.where(norms > limit, limit / norms, torch.ones_like(norms))
    grad.mul_(scale)


def _unit_norms(t: Tensor) -> Tensor:
    """L2 norm of each slice along dim 0 (kept as a broadcastable dim), or of the whole tensor when it is a vector."""
    if t.dim() <= 1:
        return torch.linalg.vector_norm(t)
    return torch.linalg.vector_norm(t, dim=tuple(range(1, t.dim())), keepdim=True)


def _total_norm(grads: list[Tensor]) -> Tensor:
    """The global L2 norm of `grads`, on the first gradient's device (foreach per device; no host sync)."""
    if not grads:
        return torch.zeros(())
    by_device: dict[torch.device, list[Tensor]] = {}
    for g in grads:
        by_device.setdefault(g.device, []).append(g)
    device = grads[0].device
    norms = [n.to(device) for group in by_device.values() for n in torch._foreach_norm(group)]
    return torch.linalg.vector_norm(torch.stack(norms))


def _classifier(optimizer: torch.optim.Optimizer, model: nn.Module | None) -> list[Tensor]:
    """The default AGC exclusion: the final classifier's parameters, found in the optimizer's parameter order."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    order = {id(p): i for i, p in enumerate(params)}
    if model is not None:
        linears = [m for m in model.modules() if isinstance(m, nn.Linear) and id(m.weight) in order]
        if not linears:
            return []
        last = max(linears, key=lambda m: order[id(m.weight)])
        return [p for p in last.parameters(recurse=False) if id(p) in order]
    matrices = [i for i, p in enumerate(params) if p.dim() == 2]
    if not matrices:
        return []
    i = matrices[-1]
    weight, following = params[i], params[i + 1 : i + 2]
    bias = [b for b in following if b.dim() == 1 and b.shape[0] == weight.shape[0]]
    return [weight, *bias]


def _check_positive(remedy: str, name: str, value: float) -> None:
    if not value > 0:
        raise InvalidValue(f"{remedy}: {name} must be > 0, got {value!r}")
