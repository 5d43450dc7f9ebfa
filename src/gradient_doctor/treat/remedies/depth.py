"""Opt-in: make a deep model shallower by dropping shape-preserving blocks from the middle of its longest stack.

    >>> hidden = [m for _ in range(4) for m in (nn.Linear(8, 8), nn.ReLU())]
    >>> model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), *hidden, nn.Linear(8, 2))
    >>> model = reduce_depth(model, keep=0.5)   # blocks 1 and 4 of 4 stay, blocks 2 and 3 become Identity

Gradients vanish or explode geometrically with depth (Glorot & Bengio 2010; trainable depth is a few times the
depth scale, Schoenholz et al. 2017), so fewer layers is the bluntest remedy; it changes what the model can
represent, hence opt-in only. The stack is the nn.Sequential with the most shape-preserving blocks (treat.shape_blocks:
a Linear(d, d) or same-shape Conv and the activations/norms/dropouts after it; never the output layer), so
dropping any of them keeps every shape. The first and last blocks are kept, the middle ones dropped.

State dict: dropped positions hold nn.Identity placeholders, so every kept module keeps its position and key
(an old state dict loads with strict=False, missing only the dropped layers).
"""

from __future__ import annotations

from torch import nn

from ...errors import InvalidValue, NotApplicable
from ..surgery.shape_blocks import ShapeBlock, shape_preserving_blocks


def reduce_depth(model: nn.Module, *, keep: float = 0.5) -> nn.Module:
    """Drop the middle shape-preserving blocks of the model's longest nn.Sequential so that round(keep * n) of
    its n blocks remain (0 <= keep < 1). NotApplicable when no block can be dropped.

    >>> reduce_depth(model, keep=0.25)
    """
    if not 0.0 <= keep < 1.0:
        raise InvalidValue(f"reduce_depth: keep must be in [0, 1) (the fraction of blocks to keep); got {keep}")
    stack = _longest_stack(shape_preserving_blocks(model))
    kept = int(keep * len(stack) + 0.5)
    if len(stack) == kept:
        raise NotApplicable(
            "reduce_depth: no shape-preserving block (Linear(d, d) or same-shape Conv with its activation, not the "
            f"output layer) can be dropped with keep={keep}; the longest stack has {len(stack)}"
        )
    head, tail = (kept + 1) // 2, kept // 2
    for block in stack[head:len(stack) - tail]:
        for k in range(block.start, block.stop):
            block.container[k] = nn.Identity()
    return model


def _longest_stack(blocks: list[ShapeBlock]) -> list[ShapeBlock]:
    """The blocks of the container holding the most blocks (the first such container on a tie)."""
    stacks: dict[int, list[ShapeBlock]] = {}
    for block in blocks:
        stacks.setdefault(id(block.container), []).append(block)
    return max(stacks.values(), key=len, default=[])
