"""Exploding gradient over a run: a layer's gradient norm, or an activation's spread, rising far above its own
early level, with hysteresis so that one spike and a sustained rise are told apart.

    >>> f = exploding_gradient(history)[0]
    >>> f.severity, f.evidence["first_step"], f.evidence["gradient"]["0"]["peak_ratio"]
    ('critical', 37, 4.1e+05)

Each layer is judged against itself: its baseline is the median of the first quarter of its recorded values in the
window (at least BASELINE_POINTS), or of its first BASELINE_POINTS values when that is higher (a run that converged
within the first quarter would otherwise measure its start against its converged noise), so layers of different
sizes and depths need no common scale. A non-finite value
counts as above every threshold (the non_finite rule locates it).
"""

from __future__ import annotations

import math

import numpy as np

from ...record.history import History, finite_median
from ..finding import Finding
from ..ranking import init_for, ranked
from ..rationale import rationale
from ..thresholds import GROWTH, LOSS_RISE
from .series import episodes, head, noise, rounded

#: An episode begins when a value exceeds the baseline e^3 ≈ 20 times (GROWTH, the 6ξ limit for growth that
#: `checkup` uses through depth) — and by more than 3 noise standard deviations of the baseline's log, so a series
#: that is noisy from the start needs a larger jump — and ends when the value falls back below half that many
#: orders of magnitude (e^1.5 ≈ 4.5x). The gap is the hysteresis: a series hovering near the threshold makes one
#: episode, not many.
ENTER_ORDERS = math.log10(GROWTH)
EXIT_ORDERS = ENTER_ORDERS / 2
NOISE_SIGMAS = 3.0
#: Fewer early values than this make no baseline: the layer is not judged.
BASELINE_POINTS = 5
#: An episode lasting this many recorded steps (and at least a tenth of the window's), or still going on at the
#: end of the window, is a sustained rise: critical. One shorter episode is an isolated spike: info — unless the loss
#: jumped e^3 ≈ 20-fold above its early level with it (GROWTH, the rise the divergence rule calls critical): one step
#: that multiplies the loss by 20 has undone the training so far, however briefly the gradients stayed up: warning.
#: Two or more short ones are recurring spikes (erratic learning): warning.
SUSTAINED_POINTS = 5
SUSTAINED_SHARE = 0.1
#: A rise is an explosion when it hurts: from the first episode on, the loss peaks above its early level (the median
#: of the window's first BASELINE_POINTS finite losses) by more than NOISE_SIGMAS noise σ of those and by LOSS_RISE
#: (thresholds.py) of that level, or turns non-finite. Gradients that grow while the loss falls are a model starting
#: to learn (attention, recurrent and embedding layers wake up from small gradients at init; measured on the
#: benchmark zoo's dev split): info. Without recorded losses a rise is not gated.
#: ... and by more than LOSS_RISE of the progress the run had made before the window's early level (`loss_at_start`
#: minus it): after a run converges (1.4 -> 1e-6), Adam's late loss spikes to 1e-3 are noise against the 1.4 the loss
#: came down, not harm (a 2-layer MLP trained 10,000 steps was called exploding for them).


def exploding_gradient(h: History) -> list[Finding]:
    """One finding over the weight layers' gradient norms and the non-saturating activations' output spread
    (`act_std`): severity from the worst layer's episodes (see SUSTAINED_POINTS)."""
    gradient = _judge(h, h.values["grad_norm"], h.nonfinite_gradients(), np.flatnonzero(h.numel > 0))
    bounded = np.isfinite(h.values["saturated_frac"]).any(axis=0)  # sigmoid/tanh-like: cannot blow up
    forward = _judge(h, h.values["act_std"], h.nonfinite_activations(), np.flatnonzero((h.numel == 0) & ~bounded))
    judged = {**gradient, **forward}
    if not judged:
        return []
    severity = max((j["severity"] for j in judged.values()), key=("info", "warning", "critical").index)
    first_step = min(j["first_step"] for j in judged.values())
    jump = _loss_jump(h, first_step)
    wrecked = severity == "info" and jump > GROWTH  # one short spike, but the loss jumped with it
    if wrecked:
        severity = "warning"
    harmless = not _loss_rose(h, first_step)
    if harmless:
        severity = "info"
    layers = [name for name in h.layers if name in judged]
    where = " and ".join(w for w, part in (("gradient norms", gradient), ("activation spread", forward)) if part)
    family = h.activation_family()
    remedies = ranked("clip_grad_norm", "decrease_lr", init_for(family), "insert_norm:batch") if gradient else \
        ranked(init_for(family), "decrease_lr", "insert_norm:batch", "insert_norm:layer")
    name = max(judged, key=lambda layer: judged[layer]["peak_ratio"])
    worst = judged[name]
    peak = f"{worst['peak_ratio']:.3g}x its early level" if math.isfinite(worst["peak_ratio"]) else "inf/NaN"
    measured = f"layer {name}'s {'gradient norm' if name in gradient else 'output spread'} rose to {peak} " \
               f"({worst['episodes']} episode(s) from step {worst['first_step']}, the longest {worst['longest']} " \
               "recorded steps)"
    return [Finding(
        kind="exploding_gradient", severity=severity, scope="run", layers=layers,
        evidence={"first_step": first_step, "gradient": gradient, "forward": forward, "loss_fell": harmless,
                  "loss_jump": rounded(jump),
                  "enter_ratio": GROWTH, "exit_ratio": 10 ** EXIT_ORDERS, "sustained_points": SUSTAINED_POINTS},
        remedies=remedies, rationale=rationale(remedies, measured),
        summary=f"{where} of {len(layers)} layer(s) rose above {GROWTH:.3g}x their early level from step {first_step}"
                + (" while the loss kept falling: learning, not exploding" if harmless else
                   " and stayed there" if severity == "critical" else
                   " once, and the loss jumped with it" if wrecked and severity == "warning" else
                   " in recurring spikes" if severity == "warning" else " once (an isolated spike)"),
    )]


def _loss_jump(h: History, step: int) -> float:
    """The loss's finite peak from `step` on over its early level (the median of the window's first BASELINE_POINTS
    finite losses); NaN when it cannot be told (too few losses, a level <= 0)."""
    finite = h.loss[np.isfinite(h.loss)]
    after = h.loss[(h.steps >= step) & np.isfinite(h.loss)]
    if finite.size < BASELINE_POINTS or after.size == 0 or not finite_median(head(finite, BASELINE_POINTS)) > 0:
        return math.nan
    return float(np.max(after) / finite_median(head(finite, BASELINE_POINTS)))


def _loss_rose(h: History, step: int) -> bool:
    """Whether the loss from `step` on rose above its early level (see LOSS_RISE); True when it cannot be told."""
    early = head(h.loss[np.isfinite(h.loss)], BASELINE_POINTS)
    after = h.loss[h.steps >= step]
    if early.size < BASELINE_POINTS or after.size == 0 or np.isnan(after).all() or np.isinf(after).any():
        return True
    base = finite_median(early)
    progress = h.loss_at_start - base if math.isfinite(h.loss_at_start) else 0.0
    return float(np.nanmax(after)) > base + max(NOISE_SIGMAS * noise(early), LOSS_RISE * abs(base), LOSS_RISE * progress)


def _judge(h: History, values: np.ndarray, nonfinite: np.ndarray, columns: np.ndarray) -> dict[str, dict]:
    """Per layer in `columns` with episodes: baseline, peak ratio, first step, episode count, longest episode.
    A step counts when the value is finite or `nonfinite` (steps × layers) marks it inf/NaN."""
    out = {}
    sustained = max(SUSTAINED_POINTS, math.ceil(SUSTAINED_SHARE * len(h.steps)))
    for i in columns:
        series = values[:, i]
        broken = nonfinite[:, i]
        recorded = np.isfinite(series) | broken
        with np.errstate(divide="ignore"):
            logs = np.where(broken, np.inf, np.log10(np.where(broken, 1.0, series)))[recorded]
        early = head(logs[np.isfinite(logs)], BASELINE_POINTS)
        if early.size < BASELINE_POINTS:
            continue
        # the window's first quarter can be all post-convergence noise: its first points set the level too
        base = max(finite_median(early), finite_median(early[:BASELINE_POINTS]))  # finite, non-empty
        lift = logs - base
        margin = NOISE_SIGMAS * noise(early)
        found = episodes(lift > max(ENTER_ORDERS, margin), lift > max(EXIT_ORDERS, margin))
        if not found:
            continue
        longest = max(last - first + 1 for first, last in found)
        ongoing = found[-1][1] == len(lift) - 1 and found[-1][1] > found[-1][0]
        out[h.layers[i]] = {
            "baseline": rounded(10 ** base), "peak_ratio": rounded(10 ** float(np.max(lift))),
            "first_step": int(h.steps[recorded][found[0][0]]), "episodes": len(found), "longest": longest,
            "severity": "critical" if longest >= sustained or ongoing else "warning" if len(found) > 1 else "info",
        }
    return out
