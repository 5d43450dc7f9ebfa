"""Layers as a reader wants them: in forward order, each with its module type.

    >>> forward_order(["3", "1", "11"], order=["1", "3", "11"])
    ['1', '3', '11']
    >>> layer_phrase(["1", "3", "5"], {"0": "Linear", "1": "Sigmoid", "3": "Sigmoid", "5": "Sigmoid"})
    'Sigmoid 1, 3, 5'

A finding names module qualified names, which in an `nn.Sequential` are indices counting every module: "layers 0,
2, 4" of a 12-layer MLP are its first three Linear layers, so the type goes with them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence


def natural_key(name: str) -> list:
    """A sort key that orders "layers.2" before "layers.10": `sorted(names, key=natural_key)`."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def forward_order(names: Iterable[str], order: Sequence[str] = ()) -> list[str]:
    """`names` without repeats, in the order of `order` (the model's forward order); names not in it follow, in
    natural order (numbers by value)."""
    position = {name: i for i, name in enumerate(order)}
    unique = list(dict.fromkeys(names))
    return sorted(unique, key=lambda n: (0, position[n], []) if n in position else (1, 0, natural_key(n)))


def layer_phrase(names: Iterable[str], kinds: Mapping[str, str] | None = None, limit: int = 8) -> str:
    """The layers grouped by module type, forward order within each group, at most `limit` names shown:
    "Linear 0, 2, 4" or "Sigmoid 1, 3, … 23 (12 layers)"; `kinds` maps name -> type in forward order."""
    kinds = kinds or {}
    ordered = forward_order(names, list(kinds))
    if not ordered:
        return ""
    groups: dict[str, list[str]] = {}
    for name in ordered:
        groups.setdefault(kinds.get(name, ""), []).append(name)
    share = max(2, limit // len(groups))
    parts = [(f"{kind} " if kind else "") + _names(members, share) for kind, members in groups.items()]
    total = f" ({len(ordered)} layers)" if len(ordered) > limit or len(groups) > 1 and len(ordered) > 2 else ""
    return "; ".join(parts) + total


def _names(members: list[str], limit: int) -> str:
    if len(members) <= limit:
        return ", ".join(members)
    return ", ".join(members[: limit - 1]) + f", … {members[-1]}"
