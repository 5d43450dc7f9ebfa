"""A fresh optimizer for a treated model: the old one's class and per-group hyperparameters, new parameters.

    >>> new_opt, clippers = rebuild_optimizer(old_opt, treated_model, ["clip_grad_norm"])

Parameters are matched to the old optimizer's groups by qualified name, through the parameters of the model the
old optimizer was built for (`old`'s tensors are looked up in `treated_model` by name where the treatment kept the
name, e.g. after a re-init). Parameters the treatment added or renamed (an inserted norm, a residual scale) join
the first group; parameters the old optimizer did not hold (a frozen body) stay out. Optimizer state (momentum, Adam moments) starts afresh: it belonged to the old weights.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..errors import InvalidType
from .remedies.clipping import adaptive_clip, clip_grad_norm, clip_grad_value

_CLIPPERS = {"clip_grad_norm": clip_grad_norm, "clip_grad_value": clip_grad_value}


def rebuild_optimizer(old: torch.optim.Optimizer, model: nn.Module, training: Sequence[str] = (),
                      names: dict[int, str] | None = None) -> tuple[torch.optim.Optimizer, list[Any]]:
    """(new optimizer, clipping handles); `names` maps id(old parameter) -> qualified name when the old
    parameters no longer belong to `model` (the treatment worked on a copy).

        >>> opt, clippers = rebuild_optimizer(torch.optim.AdamW(model.parameters()), treated, ["clip_grad_norm"],
        ...                                   {id(p): n for n, p in model.named_parameters()})
    """
    if not isinstance(old, torch.optim.Optimizer):
        raise InvalidType(f"expected a torch.optim.Optimizer; got {type(old).__name__}")
    names = names or {id(p): n for n, p in model.named_parameters()}
    group_of = {names[id(p)]: i for i, group in enumerate(old.param_groups) for p in group["params"] if id(p) in names}
    known = set(names.values())  # the untreated model's parameter names
    grouped: list[list[nn.Parameter]] = [[] for _ in old.param_groups]
    for name, param in model.named_parameters():
        if param.requires_grad and (name in group_of or name not in known):  # left out before: left out now
            grouped[group_of.get(name, 0)].append(param)
    groups = [{**{k: v for k, v in group.items() if k != "params"}, "params": params}
              for group, params in zip(old.param_groups, grouped) if params]
    accepted = inspect.signature(type(old)).parameters  # AdamW's defaults hold keys its __init__ does not take
    new = type(old)(groups, **{k: v for k, v in old.defaults.items() if k in accepted})
    return new, [adaptive_clip(new, model=model) if name == "adaptive_clip" else _CLIPPERS[name](new)
                 for name in training]
