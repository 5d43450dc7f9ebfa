"""Shape-preserving blocks of nn.Sequential containers: a shape-preserving weight layer and the activations,
norms and dropouts that follow it — the parts that `add_residual` can skip and `reduce_depth` can drop.

    >>> model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> [(b.start, b.stop) for b in shape_preserving_blocks(model)]
    [(2, 4)]

A block starts at a *unit*: a Linear/Conv that keeps the shape of its input (anatomy.preserves_shape), or an
nn.Sequential made only of units and shape-keeping modules (e.g. `Sequential(Linear(8, 8), BatchNorm1d(8))`). The
model's output layer is never part of a block. Sequentials already inside a Residual or Highway are not searched.
Blocks are found by position in their Sequential; a remedy replaces the modules at those positions (so every
other module keeps its position and its state_dict key).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from .anatomy import WEIGHT_LAYERS, is_elementwise, is_plain_sequential, output_layer, preserves_shape
from .inserted import Highway, Residual


@dataclass(frozen=True)
class ShapeBlock:
    """Positions [start, stop) of `container`, an nn.Sequential of the model."""

    container: nn.Sequential
    start: int
    stop: int

    def members(self) -> list[nn.Module]:
        return list(self.container)[self.start:self.stop]


def shape_preserving_blocks(model: nn.Module) -> list[ShapeBlock]:
    """Every shape-preserving block of every nn.Sequential in `model`, outer containers first; a block's inside is
    not searched again (a nested Sequential that is a unit belongs to its parent's block)."""
    name = output_layer(model)
    output = model.get_submodule(name) if name is not None else None
    blocks: list[ShapeBlock] = []
    _search(model, output, blocks, seen=set())
    return blocks


def _search(module: nn.Module, output: nn.Module | None, blocks: list[ShapeBlock], seen: set[int]) -> None:
    if id(module) in seen or isinstance(module, (Residual, Highway)):
        return
    seen.add(id(module))
    if not is_plain_sequential(module):
        for child in module.children():
            _search(child, output, blocks, seen)
        return
    children = list(module)
    found = _blocks_of(module, children, output)
    blocks.extend(found)
    inside = {k for block in found for k in range(block.start, block.stop)}
    for k, child in enumerate(children):
        if k not in inside:
            _search(child, output, blocks, seen)


def _blocks_of(container: nn.Sequential, children: list[nn.Module], output: nn.Module | None) -> list[ShapeBlock]:
    found, k = [], 0
    while k < len(children):
        if not _is_unit(children[k], output):
            k += 1
            continue
        stop = k + 1
        while stop < len(children) and is_elementwise(children[stop]):
            stop += 1
        found.append(ShapeBlock(container, k, stop))
        k = stop
    return found


def _is_unit(module: nn.Module, output: nn.Module | None) -> bool:
    if isinstance(module, WEIGHT_LAYERS):
        return module is not output and preserves_shape(module)
    if not is_plain_sequential(module):
        return False
    children = list(module)
    units = [_is_unit(child, output) for child in children]
    return any(units) and all(unit or is_elementwise(child) for unit, child in zip(units, children))
