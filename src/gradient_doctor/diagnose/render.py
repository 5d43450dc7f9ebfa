"""Rich terminal view of a Diagnosis: the layer table with the gradient budget as log-scale bars, the time axis,
then each finding with its evidence and remedies.

    >>> from rich.console import Console
    >>> Console().print(diag)     # or print(diag) for plain text
"""

from __future__ import annotations

import io
import math
import shutil
from typing import TYPE_CHECKING

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..catalog import CATALOG

if TYPE_CHECKING:
    from ..probe.batch.measurement import Measurement
    from .finding import Diagnosis, Finding

_HALF = 6  # bar cells on each side of the centre line
_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}


def render(diagnosis: "Diagnosis", width: int = 132) -> RenderableType:
    """Everything, as one rich renderable for a console `width` wide: `Console().print(render(diag, 80))`."""
    parts: list[RenderableType] = []
    if diagnosis.measurement is not None:
        parts += [layer_table(diagnosis.measurement, types=width >= 100), budget_line(diagnosis.measurement)]
        if diagnosis.measurement.recurrent:
            parts.append(time_table(diagnosis.measurement))
    verdict = Text("healthy: no warning or critical finding", style="bold green") if diagnosis.healthy else \
        Text(f"{sum(f.severity != 'info' for f in diagnosis.findings)} problem(s) found", style="bold red")
    parts.append(verdict)
    parts += [finding_text(f) for f in diagnosis.findings]
    return Group(*parts)


def to_text(diagnosis: "Diagnosis", width: int | None = None) -> str:
    """Plain text, for `print(diag)` and logs: `to_text(diag).splitlines()[0]`; `width` defaults to the terminal's
    (132 when there is none)."""
    width = width or shutil.get_terminal_size((132, 24)).columns
    buffer = io.StringIO()
    Console(file=buffer, width=width, no_color=True, force_terminal=False).print(render(diagnosis, width))
    return buffer.getvalue().rstrip()


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


def finding_text(f: "Finding") -> Text:
    """`finding_text(diag.findings[0]).plain`: severity, kind, scope, layers, summary, evidence, ranked remedies
    (the first with its rationale line)."""
    text = Text()
    text.append(f"\n{f.severity.upper()} ", style=_STYLE[f.severity])
    text.append(f"{f.kind} ({f.scope})", style="bold")
    if f.layers:
        text.append(f" at {', '.join(f.layers[:8])}" + (" …" if len(f.layers) > 8 else ""))
    if f.summary:
        text.append(f"\n  {f.summary}")
    for key, value in f.evidence.items():
        text.append(f"\n  {key}: ", style="dim")
        text.append(_number(value) if isinstance(value, float) else str(value))
    for rank, name in enumerate(f.remedies, 1):
        text.append(f"\n  {rank}. {name}", style="green" if rank == 1 else "")
        text.append(f" — {CATALOG[name]}", style="dim")
        if rank == 1 and name in f.rationale:
            text.append(f"\n     why: {f.rationale[name]}")
    return text


def _number(value: float, spec: str = ".2g") -> str:
    return "—" if math.isnan(value) else format(value, spec)


def _percent(value: float) -> str:
    return "—" if math.isnan(value) else f"{100 * value:.0f}%"
