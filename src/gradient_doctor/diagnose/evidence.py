"""A finding's evidence as a reader wants it: the per-layer numbers as one small table over the finding's layers (in
forward order, with their types), then the other facts, without empty, zero or repeated fields.

    >>> view = evidence_view(finding, kinds={"0": "Linear", "1": "Sigmoid", "2": "Linear"})
    >>> view.columns, view.rows            # (['grad ratio', 'update ratio'], [['0', 'Linear', '1.6e-07', '0'], ...])
    >>> view.facts                         # [('reference grad rms', '1.2e-05'), ('steps', '1500'), ...]

The terminal (`print(diag)`) and the HTML report draw the same view; `Finding.evidence` itself keeps everything
(`diag.to_dict()`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .layer_names import forward_order, layer_phrase

if TYPE_CHECKING:
    from .finding import Finding

#: Evidence kept in `Finding.evidence` but not shown: the severity already says which side of it the finding is.
HIDDEN = frozenset({"critical_below"})
#: At most this many layers get a row; the rest are counted below the table.
MAX_ROWS = 12


@dataclass
class EvidenceView:
    """`columns` name the per-layer numbers; each row is [layer, type, value per column]; `facts` are (name, text);
    `more_rows` counts the layers left out of the table."""

    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)
    more_rows: int = 0


def evidence_view(finding: "Finding", kinds: Mapping[str, str] | None = None) -> EvidenceView:
    """The view of `finding.evidence`; `kinds` maps the model's layer names to their types, in forward order."""
    kinds = kinds or {}
    known = set(finding.layers) | set(kinds)
    per_layer = {key: value for key, value in finding.evidence.items()
                 if key not in HIDDEN and _is_per_layer(value, known)}
    columns = _columns(per_layer)
    view = EvidenceView()
    if columns:
        rows = forward_order(finding.layers or [n for v in per_layer.values() for n in v], list(kinds))
        view.more_rows = max(0, len(rows) - MAX_ROWS)
        rows = rows[:MAX_ROWS]
        view.columns = list(columns)
        view.rows = [[name, kinds.get(name, ""), *(_number(column.get(name)) for column in columns.values())]
                     for name in rows]
    seen: set[str] = set()
    for key, value in finding.evidence.items():
        if key in HIDDEN or key in per_layer or _empty(key, value):
            continue
        text = _text(value, kinds)
        if text in seen or (isinstance(value, str) and value in finding.summary):
            continue  # a duplicate of a number shown, or words the summary already says
        seen.add(text)
        view.facts.append((_label(key), text))
    return view


def _is_per_layer(value: Any, layers: set[str]) -> bool:
    """{layer: number} or {layer: {name: number or word}} over some of the layers."""
    return isinstance(value, Mapping) and bool(value) and bool(set(value) & layers) and (
        all(v is None or isinstance(v, (int, float)) for v in value.values())
        or all(isinstance(v, Mapping) for v in value.values()))


def _columns(per_layer: dict[str, Mapping]) -> dict[str, dict[str, Any]]:
    """Column label -> {layer: value}: one column per {layer: number} field, one per inner name of a {layer:
    {name: value}} field (labelled with that name)."""
    columns: dict[str, dict[str, Any]] = {}
    for key, value in per_layer.items():
        if all(isinstance(v, Mapping) for v in value.values()):
            for layer, inner in value.items():
                for name, number in inner.items():
                    columns.setdefault(_label(str(name)), {})[layer] = number
        else:
            columns[_label(key)] = dict(value)
    return columns


def _empty(key: str, value: Any) -> bool:
    """None, NaN, False, an empty container, or a zero that is not a step number."""
    if value is None or value is False or (isinstance(value, (list, tuple, dict, str)) and not value):
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0 and "step" not in key


def _text(value: Any, kinds: Mapping[str, str]) -> str:
    if isinstance(value, bool):
        return "yes"
    if isinstance(value, (int, float)):
        return _number(value)
    if isinstance(value, (list, tuple)):
        if all(isinstance(v, str) for v in value):
            return layer_phrase(value, kinds, limit=6)
        return ", ".join(_text(v, kinds) for v in value[:8]) + (" …" if len(value) > 8 else "")
    if isinstance(value, Mapping):
        return ", ".join(f"{k} {_text(v, kinds)}" for k, v in value.items() if not _empty(str(k), v))
    return str(value)


def _number(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return format(float(value), ".3g")


def _label(key: str) -> str:
    return key.replace("_", " ")
