"""Non-finite values (inf/NaN) during a run, located at the first step and, within it, the first place they show.

    >>> non_finite(history)[0].evidence["first_step"], non_finite(history)[0].layers
    (41, ['0'])

Within a step things happen in this order: the model's inputs (the data), the forward pass (activations, then the
loss), the backward pass (the gradients `optimizer.step()` is about to apply), the update (weights, recorded after the
step). The finding names the earliest of these at the earliest step (`where`), and the first layer in forward order
where it shows at that step (`first_layer`, in the earliest place that has layers: the inputs and the loss have none).
"""

from __future__ import annotations

import numpy as np

from ...record.history import History, finite_median
from ..finding import Finding
from ..ranking import init_for, ranked
from ..rationale import rationale

#: Any inf/NaN is critical: one step spreads it to every later output and every earlier gradient, and an optimizer
#: step with it makes the weights non-finite for good.
SEVERITY = "critical"
_ORDER = ("inputs", "activations", "loss", "gradients", "weights")


def non_finite(h: History) -> list[Finding]:
    """One critical finding at the first step with inf/NaN in the inputs, activations, loss, gradients or weights.
    Inf/NaN in the model's inputs (the data) come before all of these: the remedy is the data, `check_inputs`."""
    broken = _broken(h)
    firsts = {where: (int(h.steps[rows.any(axis=1)][0]) if rows.any() else None) for where, rows in broken.items()}
    found = [(step, _ORDER.index(where), where) for where, step in firsts.items() if step is not None]
    if not found:
        return []
    step, _, where = min(found)
    if where == "inputs":
        return [_in_the_inputs(h, step, firsts)]
    at = np.searchsorted(h.steps, step)
    # the layers where it shows at that step: of the earliest place that has layers (the loss has none)
    place, layers = next(((p, [h.layers[i] for i in np.flatnonzero(broken[p][at])]) for p in _ORDER
                          if p not in ("inputs", "loss") and broken[p][at].any()), (None, []))
    remedies = ranked("clip_grad_norm", "decrease_lr", init_for(h.activation_family()))
    summary = f"inf/NaN first appeared at step {step} in the {where}" \
        + (f", first in forward order in the {place} of layer {layers[0]}" if layers else "")
    return [Finding(
        kind="non_finite", severity=SEVERITY, scope="run", layers=layers[:1],
        evidence={"first_step": step, "where": where, "first_layer": layers[0] if layers else None,
                  "first_layer_in": place, "layers_at_first_step": layers, "first_step_by_kind": firsts},
        remedies=remedies, summary=summary, rationale=rationale(remedies, summary),
    )]


def _broken(h: History) -> dict[str, np.ndarray]:
    """Steps × layers (steps × 1 for the loss) masks of non-finite values per place. A NaN in the record also means
    "not measured", so a NaN counts only where the place was measured: see `History.nonfinite_activations`; a
    weight layer's NaN norm on a step where some layer's detail metrics were taken; a NaN loss as `_loss_broken`
    says."""
    v, owns = h.values, (h.numel > 0)[None, :]  # weight layers; the others are activation modules
    detail_step = np.isfinite(v["grad_zero_frac"]).any(axis=1) | np.isfinite(v["weight_norm"]).any(axis=1)
    gradients = h.nonfinite_gradients()
    weights = np.isinf(v["weight_norm"]) | (np.isnan(v["weight_norm"]) & detail_step[:, None] & owns)
    later = np.flip(np.logical_or.accumulate(np.flip((gradients | weights).any(axis=1))))
    bad_inputs = np.zeros((len(h.steps), 1), dtype=bool) if h.input_nonfinite is None else \
        (np.nan_to_num(h.input_nonfinite) > 0)[:, None]
    return {
        "inputs": bad_inputs,
        "activations": h.nonfinite_activations(),
        "loss": _loss_broken(h, later)[:, None],
        "gradients": gradients,
        "weights": weights,
    }


def _in_the_inputs(h: History, step: int, firsts: dict[str, int | None]) -> Finding:
    """The finding for inf/NaN that were in the model's inputs at `step` before anything else broke."""
    count = int(np.nan_to_num(h.input_nonfinite)[np.searchsorted(h.steps, step)])
    steps = int((np.nan_to_num(h.input_nonfinite) > 0).sum())
    remedies = ranked("check_inputs")
    summary = f"inf/NaN first appeared at step {step} in the model's inputs: {count} entries of that step's batch " \
              f"(and batches of {steps} step(s) in all), before any layer, loss or gradient"
    return Finding(
        kind="non_finite", severity=SEVERITY, scope="run", layers=[],
        evidence={"first_step": step, "where": "inputs", "input_nonfinite": count, "steps_with_bad_inputs": steps,
                  "first_step_by_kind": firsts},
        remedies=remedies, summary=summary, rationale=rationale(remedies, summary),
    )


def _loss_broken(h: History, corroborated: np.ndarray) -> np.ndarray:
    """Steps where the loss is ±inf, or NaN where a NaN loss is the likely reading: the record keeps a NaN loss as a
    missing value, so a missing loss counts only on the cadence of the finite ones (after the first of them) and
    when gradients or weights turn non-finite at that step or later (`corroborated`): a run that simply stopped
    logging its loss has finite gradients."""
    broken = np.isinf(h.loss)
    recorded = h.steps[np.isfinite(h.loss)]
    if recorded.size >= 2:
        period = max(int(finite_median(np.diff(recorded))), 1)
        on_cadence = ((h.steps - recorded[0]) % period == 0) & (h.steps > recorded[0])
        broken |= np.isnan(h.loss) & on_cadence & corroborated
    return broken
