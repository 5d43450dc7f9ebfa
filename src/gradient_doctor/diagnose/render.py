"""Rich terminal view of a Diagnosis: the layer table with the gradient budget as log-scale bars, the time axis,
then each finding with its evidence and remedies.

    >>> from rich.console import Console
    >>> Console().print(diag)     # or print(diag) for plain text
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rich import box
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from .._console import plain_text, text_width
from ..catalog import CATALOG
from .evidence import EvidenceView, evidence_view
from .layer_names import layer_phrase

if TYPE_CHECKING:
    from ..probe.batch.measurement import Measurement
    from .finding import Diagnosis, Finding

_HALF = 6  # bar cells on each side of the centre line
_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


#: What the diagnosis text ends with when a finding has remedies: the call that applies them, verified on a batch.
TREAT_CALL = "gd.treat(model, diag, inputs=x)"


def render(diagnosis: "Diagnosis", width: int = 132, treat_call: str | None = TREAT_CALL) -> RenderableType:
    """Everything, as one rich renderable for a console `width` wide: `Console().print(render(diag, 80))`; it ends
    with `treat_call` when a warning or critical finding ranks remedies (None: left out, for the caller to print
    unwrapped with `treat_hint`)."""
    parts: list[RenderableType] = []
    if diagnosis.measurement is not None:
        parts += [layer_table(diagnosis.measurement, types=width >= 100), budget_line(diagnosis.measurement)]
        if diagnosis.measurement.recurrent:
            parts.append(time_table(diagnosis.measurement))
    verdict = Text("healthy: no warning or critical finding", style="bold green") if diagnosis.healthy else \
        Text(f"{sum(f.severity != 'info' for f in diagnosis.findings)} problem(s) found", style="bold red")
    parts.append(verdict)
    parts += [finding_block(f, diagnosis.layer_kinds) for f in diagnosis.findings]
    hint = treat_hint(diagnosis, treat_call) if treat_call else ""
    if hint:
        parts.append(Text(hint))
    return Group(*parts)


def treat_hint(diagnosis: "Diagnosis", treat_call: str = TREAT_CALL) -> str:
    """"\napply the remedies, each verified on your batch:\n" + `treat_call` when a warning or critical finding
    ranks remedies, else "": print the call on a line of its own, unwrapped, so it can be copied."""
    if not any(f.remedies for f in diagnosis.findings if f.severity != "info"):
        return ""
    return f"\napply the remedies, each verified on your batch:\n{treat_call}"


def to_text(diagnosis: "Diagnosis", width: int | None = None, treat_call: str = TREAT_CALL) -> str:
    """Plain text, for `print(diag)` and logs: `to_text(diag).splitlines()[-1]` is the treat call (never wrapped);
    `width` defaults to the terminal's (100 columns when there is none)."""
    width = width or text_width()
    hint = treat_hint(diagnosis, treat_call)
    return plain_text(render(diagnosis, width, None), width) + (f"\n{hint}" if hint else "")


def layer_table(m: "Measurement", types: bool = True) -> Table:
    """`Console().print(layer_table(diag.measurement))`: one row per layer, its gain as a bar around the centre;
    `types=False` leaves out the module-type column (narrow consoles)."""
    table = Table(title="gradient budget per layer: backward gain ‖δ_in‖/‖δ_out‖ (log scale), forward order",
                  title_justify="left", box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    table.add_column("layer", overflow="fold", min_width=12)
    if types:
        table.add_column("type", no_wrap=True, max_width=14, style="dim")
    table.add_column("loses◀│▶adds", justify="center", no_wrap=True, min_width=2 * _HALF + 1)
    for header in ("log10", "‖δ_out‖", "‖∇θ‖", "RMS out", "sat/dead"):
        table.add_column(header, justify="right", no_wrap=True)
    finite = [abs(layer.log_gain) for layer in m.layers if math.isfinite(layer.log_gain)]
    scale = max(finite + [1.0])
    for layer in m.layers:
        fraction = layer.saturated_frac if not math.isnan(layer.saturated_frac) else layer.dead_frac
        table.add_row(Text(layer.name), *([Text(layer.kind)] if types else []), gain_bar(layer.log_gain, scale), _number(layer.log_gain, "+.2f"),
                      _number(layer.delta_out), _number(layer.grad_norm), _number(layer.rms_out), _percent(fraction))
    return table


def gain_bar(log_gain: float, scale: float) -> Text:
    """`gain_bar(-0.6, 1.0)`: a bar left of the centre for orders lost, right for orders added; `scale` orders
    fill one side."""
    if math.isnan(log_gain):
        return Text(" " * _HALF + "·" + " " * _HALF, style="dim")
    cells = _HALF if math.isinf(log_gain) else min(_HALF, round(abs(log_gain) / scale * _HALF))
    if log_gain < 0:
        return Text(" " * (_HALF - cells) + "█" * cells + "│" + " " * _HALF, style="red")
    return Text(" " * _HALF + "│" + "█" * cells + " " * (_HALF - cells), style="green")


def budget_line(m: "Measurement") -> Text:
    """`budget_line(m).plain`: the end-to-end ratio, ξ, and the orders by role."""
    b = m.budget
    return Text(
        f"end to end: ‖δ‖ at {b.first} / at {b.last} = {b.end_to_end:.3g} "
        f"(log10 {_number(math.log10(b.end_to_end) if b.end_to_end > 0 else -math.inf, '+.2f')}) over "
        f"{b.depth} weight layers; depth scale ξ = {b.xi:.3g} layers (trainable to ≈ 6ξ). Orders from "
        f"activations {b.by_role['activation']:+.2f}, weights {b.by_role['weights']:+.2f}, "
        + (f"recurrent layers {b.by_role['recurrent']:+.2f} (see the time axis), " if b.by_role["recurrent"] else "")
        + f"skips/functional ops {_number(b.remainder, '+.2f')}. Loss: {m.loss_source}."
    )


def time_table(m: "Measurement") -> Table:
    """`Console().print(time_table(m))`: per recurrent module, steps, memory horizon, first/last-step ratio."""
    table = Table(title="time axis (gradient at each step's input for a loss on the last step)",
                  title_justify="left", box=box.SIMPLE_HEAD)
    for header in ("module", "type", "steps", "memory horizon", "first/last step", "above dtype resolution"):
        table.add_column(header, no_wrap=True)
    for t in m.recurrent:
        table.add_row(Text(t.name), Text(t.kind), str(t.steps), f"{t.horizon} steps", _number(float(t.relative[0])),
                      f"{t.resolution_horizon} steps")
    return table


def finding_block(f: "Finding", kinds: dict[str, str] | None = None) -> RenderableType:
    """`Console().print(finding_block(finding, diag.layer_kinds))`: severity, kind and layers (forward order, with
    their types), then, indented, the summary, the evidence as a small table and the ranked remedies (the first
    with what it rests on)."""
    kinds = kinds or {}
    title = Text(f"{f.kind} ({f.scope})", style="bold")
    if f.layers:
        title.append(f" at {layer_phrase(f.layers, kinds)}", style="")
    head = Table.grid(padding=(0, 1))  # the title's continuation lines hang under its first word
    head.add_column(no_wrap=True)
    head.add_column()
    head.add_row(Text(f.severity.upper(), style=_STYLE[f.severity]), title)
    body: list[RenderableType] = [Text(f.summary)] if f.summary else []
    body += evidence_parts(evidence_view(f, kinds))
    if f.remedies:
        body.append(remedy_grid(f))
    return Group(Text(""), head, Padding(Group(*body), (0, 0, 0, 2)))


def evidence_parts(view: EvidenceView) -> list[RenderableType]:
    """The per-layer table (when there is one) and a line of the other facts."""
    parts: list[RenderableType] = []
    if view.rows:
        table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False)
        table.add_column("layer", overflow="fold")
        table.add_column("type", style="dim", no_wrap=True)
        for column in view.columns:
            table.add_column(column, justify="right", no_wrap=True)
        for row in view.rows:
            table.add_row(*map(Text, row))
        if view.more_rows:
            table.add_row(Text(f"… {view.more_rows} more"), *[Text("")] * (len(view.columns) + 1))
        parts.append(table)
    if view.facts:
        facts = Text()
        for i, (name, value) in enumerate(view.facts):
            facts.append(" · " if i else "", style="dim")
            facts.append(f"{name} ", style="dim")
            facts.append(value)
        parts.append(facts)
    return parts


def remedy_grid(f: "Finding") -> Table:
    """The ranked remedies, one per row with a hanging indent; the first also says why, without repeating the
    summary it rests on."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(no_wrap=True)
    grid.add_column()
    for rank, name in enumerate(f.remedies, 1):
        line = Text.assemble((name, "green" if rank == 1 else ""), (f" — {CATALOG[name]}", "dim"))
        why = why_text(f, name) if rank == 1 else ""
        if why:
            line.append(f"\nwhy: {why}")
        grid.add_row(Text(f"{rank}."), line)
    return grid


def why_text(f: "Finding", name: str) -> str:
    """The rationale of remedy `name` less the measured clause the summary already states ("" when that is all
    it says): `why_text(finding, finding.remedies[0])`."""
    line = f.rationale.get(name, "")
    measured, arrow, rest = line.partition(f" → {name}")
    if arrow and measured and measured in f.summary:
        return rest.lstrip(": ")
    return line


def _number(value: float, spec: str = ".2g") -> str:
    return "—" if math.isnan(value) else format(value, spec)


def _percent(value: float) -> str:
    return "—" if math.isnan(value) else f"{100 * value:.0f}%"
