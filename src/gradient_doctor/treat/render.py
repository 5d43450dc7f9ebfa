"""Rich terminal view of a Treatment: remedies kept and rolled back, budgets before/after, the architecture diff.

    >>> Console().print(treatment)     # or print(treatment) for plain text
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from .._console import plain_text
from ..catalog import CATALOG
from .health import Health

if TYPE_CHECKING:
    from ..diagnose.finding import Diagnosis
    from .treatment import Treatment

#: The reason `gd.treat` gives an opt-in remedy (reduce_depth, greedy_pretrain) it did not try.
NOT_TRIED = "opt-in"


def render(t: "Treatment") -> RenderableType:
    parts: list[RenderableType] = [remedy_table(t), budget_table(t.before, t.after)]
    if t.diff:
        parts.append(Text("architecture diff (carry it into your code; weights are in Treatment.model):", style="bold"))
        parts += [Text(line, style={"-": "red", "+": "green"}.get(line[0], "yellow")) for line in compact_diff(t.diff)]
    for name in t.training:
        parts.append(Text(f"training loop: {name} — {CATALOG[name]} (attached by Treatment.rebuild_optimizer)"))
    for name in t.advice:
        parts.append(Text(f"advice: {name} — {CATALOG[name]}"))
    verdict = Text("after treatment: healthy", style="bold green") if t.after.healthy else \
        Text(f"after treatment: {Health.of(t.after).problems} problem(s) remain", style="bold red")
    parts.append(verdict)
    return Group(*parts)


def to_text(t: "Treatment", width: int | None = None) -> str:
    """Plain text for `print(treatment)`, as wide as the terminal (100 columns when there is none)."""
    return plain_text(render(t), width)


def compact_diff(diff: list[str]) -> list[str]:
    """The diff with each run of identical replacements on one line.

        >>> compact_diff(["- 1: Sigmoid()", "+ 1: ReLU()", "- 3: Sigmoid()", "+ 3: ReLU()"])
        ['~ 1, 3: Sigmoid() -> ReLU()']
    """
    out: list[str | tuple[str, str]] = []  # lines, and (old, new) placeholders for the groups
    groups: dict[tuple[str, str], list[str]] = {}
    i = 0
    while i < len(diff):
        old, new = diff[i], diff[i + 1] if i + 1 < len(diff) else ""
        old_name, _, old_module = old[2:].partition(": ")
        new_name, _, new_module = new[2:].partition(": ")
        if old.startswith("- ") and new.startswith("+ ") and old_name == new_name:
            key = (old_module, new_module)
            if key not in groups:
                groups[key] = []
                out.append(key)
            groups[key].append(old_name)
            i += 2
        else:
            out.append(old)
            i += 1
    return [f"~ {', '.join(groups[line])}: {line[0]} -> {line[1]}" if isinstance(line, tuple) else line
            for line in out]


def remedy_table(t: "Treatment") -> Table:
    table = Table(title="treatment: each remedy verified with checkup on the batch", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    table.add_column("remedy", no_wrap=True)
    table.add_column("outcome", no_wrap=True)
    table.add_column("why", overflow="fold")
    for i, name in enumerate(t.applied, 1):
        table.add_row(name, Text(f"kept ({i})", style="green"), CATALOG[name])
    for name, reason in t.rejected:
        table.add_row(name, outcome(reason), Text(reason))
    return table


def outcome(reason: str) -> Text:
    """What happened to a remedy that was not kept, from its reason: "not tried" (opt-in, not named), "not
    applicable" (nothing in the model for it), else "rolled back" (applied, measured, undone)."""
    if reason.startswith(NOT_TRIED):
        return Text("not tried", style="dim")
    if reason.startswith("not applicable"):
        return Text("not applicable", style="dim")
    return Text("rolled back", style="yellow")


def budget_table(before: "Diagnosis", after: "Diagnosis") -> Table:
    table = Table(title="gradient budget before -> after", title_justify="left", box=box.SIMPLE_HEAD,
                  padding=(0, 1), pad_edge=False)
    for column in ("", "before", "after"):
        table.add_column(column, justify="right" if column else "left")
    rows = [("end-to-end ratio (depth)", lambda d: _ratio(d.measurement.budget.through_depth)),
            ("orders of magnitude off", lambda d: f"{Health.of(d).orders_off:.1f}"),
            ("warning/critical findings", lambda d: str(Health.of(d).problems))]
    for label, cell in rows:
        table.add_row(label, cell(before), cell(after))
    for b, a in zip(before.measurement.recurrent, after.measurement.recurrent):
        table.add_row(Text(f"{b.name}: first/last time step"), _ratio(float(b.relative[0])),
                      _ratio(float(a.relative[0])))
    return table


def _ratio(value: float) -> str:
    return f"{value:.2e}" if math.isfinite(value) else str(value)
