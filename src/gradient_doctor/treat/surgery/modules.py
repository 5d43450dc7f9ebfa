"""Small tools for model surgery: find modules by type and replace one by its qualified name.

    >>> model = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid())
    >>> replace_module(model, "1", nn.ReLU())
    >>> [name for name, _ in modules_of(model, nn.ReLU)]
    ['1']
"""

from __future__ import annotations

from collections.abc import Iterator

from torch import nn

from ...errors import InvalidValue


def modules_of(model: nn.Module, kinds: type | tuple[type, ...]) -> Iterator[tuple[str, nn.Module]]:
    """(qualified name, module) for every module of `model` (the root included, named "") that is a `kinds`."""
    for name, module in model.named_modules():
        if isinstance(module, kinds):
            yield name, module


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put `new` where the submodule `name` ("block.0.act") is; the root ("") cannot be replaced in place."""
    if not name:
        raise InvalidValue("the root module cannot be replaced in place; return the new module instead")
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)


def place_like(new: nn.Module, reference: nn.Module) -> nn.Module:
    """`new` moved to the device and floating dtype of `reference`'s first parameter (or buffer), if it has any."""
    tensors = [*reference.parameters(), *reference.buffers()]
    if not tensors:
        return new
    like = next((t for t in tensors if t.is_floating_point()), tensors[0])
    return new.to(device=like.device, dtype=like.dtype if like.is_floating_point() else None)
