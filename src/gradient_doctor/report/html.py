"""`gd.report(obj, path)`: one self-contained, offline HTML file for a run, a checkup or a treatment.

    >>> gd.report(run, "report.html")                  # a Run (live or gd.load-ed), or a log_dir
    >>> gd.report(gd.checkup(model, x), "checkup.html")
    >>> gd.report(gd.treat(model, diag, inputs=x), "treatment.html")

The same input gives the same bytes: nothing from the clock, stable ordering, fixed number formats.
What each section shows: docs/report.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..diagnose import Diagnosis, diagnose
from ..errors import InvalidType
from ..record import RunRecord, load
from ..treat.render import compact_diff, outcome
from . import charts
from .budget import checkup_sections, shared_range, waterfall_figure
from .data import RunView, binned, line, loss_log_scale, ridge
from .page import cards, figure, note, page, section, table, verdict
from .svg import colour, esc, label


def report(obj: Any, path: str | Path) -> Path:
    """>>> gd.report(run, "report.html")              # or gd.report("runs/a", "report.html")
    >>> gd.report(gd.checkup(model, x), "checkup.html")

    Write the report of `obj` — a `Run`, a log_dir, a `Diagnosis` or a `Treatment` — to `path`; returns it.
    """
    path = Path(path)
    path.write_text(render(obj), encoding="utf-8")
    return path


def render(obj: Any) -> str:
    """The report of `obj` as an HTML string (see `report`)."""
    if isinstance(obj, (str, Path)):
        obj = load(obj)
    if isinstance(obj, RunRecord):
        return run_page(obj)
    if isinstance(obj, Diagnosis):
        return diagnosis_page(obj)
    if all(hasattr(obj, name) for name in ("before", "after", "applied")):
        return treatment_page(obj)
    if all(hasattr(obj, name) for name in ("rounds", "run", "interventions")):
        return autotrain_page(obj)
    raise InvalidType(
        "gd.report expects a Run (or its log_dir), a Diagnosis, a Treatment (with .before, .after, .applied) or an "
        f"AutoTrainResult (with .rounds, .run, .interventions); got {type(obj).__name__}"
    )


# -- a run -------------------------------------------------------------------------------
def run_page(run: RunRecord) -> str:
    """Findings, gradient flow, heatmaps, activations, loss and gradient-norm ridges of a recorded run."""
    sections, subtitle = run_sections(run)
    return page("gradient-doctor: run report", sections, subtitle)


def run_sections(run: RunRecord) -> tuple[list[str], str]:
    """The run report's sections and its subtitle."""
    view = RunView.read(run)
    steps = view.steps
    where = f" · {run.log_dir}" if run.log_dir is not None else ""
    if len(steps) == 0:
        return [note("No steps recorded yet.")], f"{len(view.layers)} layers{where}"
    subtitle = f"{len(steps)} recorded steps ({steps[0]}–{steps[-1]}), {len(view.layers)} layers{where}"
    diagnosis = diagnose(run)
    sections = [
        section("findings", "Findings", verdict(diagnosis) + cards(diagnosis.findings, diagnosis.layer_kinds)),
        section("gradient-flow", "Gradient flow per layer", _flow(view),
                "L2 norm of each layer's gradient (its own parameters jointly), first layer at the top; "
                "log scale. A lower layer orders of magnitude below the upper ones is a vanishing gradient."),
        section("heatmaps", "Layers × steps", _heatmaps(view),
                "Colour is log-scaled; each column is the median of its steps when there are more steps than "
                "columns; steps where a metric was not measured are left out."),
        section("activations", "Saturation and dead units", _activations(view),
                "Per activation layer, over the steps where activations were measured; darker lines are "
                "earlier layers."),
        section("loss", "Loss", _loss(view)),
        section("distributions", "Gradient histograms per layer", _ridges(view),
                "For each layer, the histogram of log10 |g| over its gradient's entries at a few detail steps "
                "(first to last; half-decade bins). A layer whose mass sits decades left of the others' has a "
                "vanishing gradient; exact zeros and inf/NaN entries are counted apart, in no bin."),
    ]
    interventions = run.interventions
    if interventions:
        sections.insert(1, section("interventions", "What the guard did", _interventions(interventions),
                                   "Actions of gd.watch(..., guard=True) at optimizer steps: updates skipped for "
                                   "inf/NaN gradients, gradient-norm spikes clipped to the run's running level, "
                                   "roll-backs of a diverging loss."))
    return sections, subtitle


def _interventions(interventions: list, limit: int = 200) -> str:
    rows = [[str(i.step), i.kind.replace("_", " "),
             ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in i.detail.items())]
            for i in interventions[:limit]]
    more = note(f"{len(interventions) - limit} more not shown.") if len(interventions) > limit else ""
    return table(["step", "action", "detail"], rows, "interventions") + more


# -- an autotrain result (duck-typed: .rounds, .run, .interventions) -------------------------------
def autotrain_page(result: Any) -> str:
    """The rounds of gd.autotrain (what was found, applied, restarted), every action in the loop, then the last
    round's run report."""
    rows = [[str(r.index), r.action.replace("_", " "), ", ".join(r.findings) or "—", ", ".join(r.applied) or "—",
             ", ".join(r.clipping) or "—", f"x{r.lr_factor:g}", str(r.steps) if r.index else "—"]
            for r in result.rounds]
    story = "".join(f"<li>{esc(str(r))}</li>" for r in result.rounds)
    sections = [section("rounds", "Rounds", f"<ul>{story}</ul>"
                        + table(["round", "action", "findings", "applied", "clipping", "learning rate", "steps"],
                                rows, "rounds"),
                        "Round 0 is the checkup at init; each later round trains from the (treated) initial weights "
                        "until the budget ends or a check restarts it.")]
    if result.interventions:
        grouped = "".join(f"<li>{esc(line)}</li>" for line in result.action_lines())
        sections.append(section("loop-actions", "Actions in the loop", f'<ul data-list="actions">{grouped}</ul>',
                                "The guard's actions and autotrain's in-place adjustments, one line per round and "
                                "kind; the last round's report below lists each of its guard's actions."))
    run_parts, subtitle = run_sections(result.run)
    return page("gradient-doctor: autotrain report", sections + run_parts,
                f"{result.steps} steps, {len(result.rounds) - 1} watched round(s) · last round: {subtitle}")


def _flow(view: RunView) -> str:
    rows = view.flow_rows()
    if not rows:
        return note("No gradient norms recorded.")
    layers, grad = view.with_values(view.grad_norm)
    series = {f"step {view.steps[r]}": grad[r] for r in rows}
    return figure(charts.bars(layers, series, caption="‖g‖ (log scale)", title="gradient norm per layer"),
                  "‖g‖ per layer at " + ", ".join(series), "grad_flow")


def _heatmaps(view: RunView) -> str:
    out = []
    for ident, matrix, caption in (("grad_norm_heatmap", view.grad_norm, "‖g‖"),
                                   ("update_ratio_heatmap", view.update_ratio, "‖Δw‖/‖w‖")):
        layers, values = view.with_values(matrix)
        columns, grid = binned(view.steps, values)
        if not columns:
            out.append(note(view.ratio_missing() if matrix is view.update_ratio else f"No {caption} recorded."))
            continue
        out.append(figure(charts.heatmap(layers, columns, grid, caption=caption), f"{caption} per layer and step",
                          ident))
    return "".join(out)


def _activations(view: RunView) -> str:
    out = []
    for ident, matrix, caption in (("saturation", view.saturated, "saturated fraction"),
                                   ("dead", view.dead, "dead fraction")):
        layers, values = view.with_values(matrix)
        if not layers:
            out.append(note(f"No {caption}: no activation of that family was measured."))
            continue
        series = {name: line(view.steps, values[:, j]) for j, name in enumerate(layers)}
        shades = [colour(0.85 * j / max(len(layers) - 1, 1)) for j in range(len(layers))]
        if not np.nanmax(values) > 0:
            out.append(note(_NONE_AT_ALL[ident]))
        out.append(figure(charts.lines(series, x_caption="step", y_caption=caption, y_range=(0.0, 1.0), colours=shades),
                          f"{caption} per activation layer over steps", ident))
    return "".join(out)


#: Why a fraction's chart is a flat line at 0, in one sentence.
_NONE_AT_ALL = {
    "saturation": "No output of any sigmoid/tanh-like layer came within saturation_eps (1 % of its range by "
                  "default) of a bound on a measured step, so every line lies at 0; such layers still shrink the "
                  "gradient (σ′ ≤ 0.25).",
    "dead": "No ReLU-like unit was zero for every sample of a measured step, so every line lies at 0.",
}


def _loss(view: RunView) -> str:
    finite = np.isfinite(view.loss)
    if not finite.any():
        return note("No loss recorded: pass it with run.step(loss=loss).")
    values = view.loss[finite]
    log_y = loss_log_scale(view.loss)
    chart = charts.lines({"loss": line(view.steps[finite], values)}, x_caption="step", y_caption="loss", log_y=log_y)
    first, last = int(np.flatnonzero(finite)[0]), int(np.flatnonzero(finite)[-1])
    numbers = table(["", "step", "loss"], [
        ["first", str(view.steps[first]), label(view.loss[first], ".6g")],
        ["lowest", str(view.steps[finite][int(np.argmin(values))]), label(values.min(), ".6g")],
        ["last", str(view.steps[last]), label(view.loss[last], ".6g")],
    ], "loss")
    return figure(chart, "loss per step" + (" (log scale)" if log_y else ""), "loss") + numbers


def _ridges(view: RunView) -> str:
    columns, edges, counts = ridge(view.histograms)
    if not columns:
        return note("No gradient histograms recorded (they are taken every detail_every steps).")
    layers = [view.layers[j] for j in columns]
    return figure(charts.ridges(layers, edges, counts, caption="log10 |g|"),
                  "histogram of log10 |g| over each layer's gradient entries, at sampled steps", "ridge")


# -- a diagnosis (checkup or run) ----------------------------------------------------------
def diagnosis_page(diagnosis: Diagnosis) -> str:
    """Verdict and finding cards; for a checkup also the gradient budget and the time axis."""
    findings = verdict(diagnosis) + cards(diagnosis.findings, diagnosis.layer_kinds)
    sections = [section("findings", "Findings", findings)]
    if diagnosis.measurement is not None:
        sections += checkup_sections(diagnosis.measurement)
    kind = "checkup" if diagnosis.measurement is not None else "diagnosis"
    return page(f"gradient-doctor: {kind} report", sections)


# -- a treatment (duck-typed: .before, .after, .applied, .rejected, .diff) -------------------
def treatment_page(treatment: Any) -> str:
    """What was applied and rejected, the architecture diff, and the budgets and findings before/after."""
    before, after = treatment.before, treatment.after
    applied = "".join(f"<li>{esc(name)}</li>" for name in treatment.applied) or "<li>nothing</li>"
    rejected = table(["remedy", "outcome", "reason"],
                     [[str(n), outcome(str(r)).plain, str(r)] for n, r in getattr(treatment, "rejected", [])],
                     "rejected") if getattr(treatment, "rejected", None) else note("Every remedy tried was kept.")
    diff_lines = compact_diff(list(getattr(treatment, "diff", []) or []))
    diff = ('<pre class="diff">' + "\n".join(_diff_line(line) for line in diff_lines) + "</pre>") if diff_lines \
        else note("The architecture did not change.")
    sections = [
        section("findings", "Verdict after treatment", verdict(after)
                + f'<h3>Applied</h3><ul data-list="applied">{applied}</ul><h3>Not kept</h3>{rejected}'),
        section("diff", "Architecture diff", diff),
    ]
    if before.measurement is not None and after.measurement is not None:
        scale = shared_range(before.measurement, after.measurement)
        sides = "".join(f"<div>{waterfall_figure(d.measurement, f'{name}: gradient budget', f'budget_{name}', scale)}"
                        "</div>" for name, d in (("before", before), ("after", after)))
        sections.append(section("budget", "Gradient budget before and after", f'<div class="side">{sides}</div>',
                                "Orders of magnitude each layer adds to (green) or removes from (red) the "
                                "backward signal; the last bar is the end-to-end ratio. Both charts share one "
                                "scale, so their bars compare."))
    sides = "".join(f'<div data-side="{name}"><h3>{name.capitalize()}</h3>{verdict(d)}'
                    f'{cards(d.findings, d.layer_kinds)}</div>' for name, d in (("before", before), ("after", after)))
    sections.append(section("findings-before-after", "Findings before and after", f'<div class="side">{sides}</div>'))
    return page("gradient-doctor: treatment report", sections)


def _diff_line(line: str) -> str:
    cls = {"+": "add", "-": "del", "~": "chg"}.get(line[:1], "")
    return f'<span class="{cls}">{esc(line)}</span>' if cls else esc(line)

