"""Exploding gradient through depth: the backward signal grows layer after layer toward the first layers, and/or
the forward activations grow with depth (which blows up the weight gradients, ∝ input × δ).

    >>> finding = exploding_gradient(measurement)[0]
    >>> finding.evidence["backward"], finding.evidence["forward"]
    (True, False)
"""

from __future__ import annotations

import math
from collections.abc import Callable

from ...probe.batch.measurement import LayerStats, Measurement
from ..finding import Finding
from ..ranking import init_for, ranked
from ..rationale import rationale
from ..thresholds import GROWTH
from .attribution import activation_family, budget_layers, mechanism, orders, top_layers

#: AUTOTRAINER (Zhang et al. 2021) calls a model exploding when its first/last gradient ratio exceeds 70
#: (calibrated on 495 models): growth that also reaches the first layer that strongly is critical.
CRITICAL = 70.0
#: A plain chain (no skip connection: the layers' gains account for the end-to-end ratio within CHAIN_TOLERANCE
#: orders of magnitude) whose δ ratio first/last exceeds CRITICAL grows *through* its normalisation layers, where
#: compounding restarts: deep batch-normalised nets without skips have gradients that explode towards the input at
#: any init (Yang et al. 2019, "A mean field theory of batch normalization"); skips cure it (De & Smith 2020). The
#: ratio must stay above CRITICAL without the single largest layer gain: one normalisation layer that rescales a
#: tiny input (gain 1/RMS) is a reset of scale, not a growth that compounds.
CHAIN_TOLERANCE = 0.5


def exploding_gradient(m: Measurement) -> list[Finding]:
    """Growth that compounds over consecutive layers (`compounding`) by more than e^3 — the 6ξ limit for growth —
    in the backward signal (layer gains ‖δ_in‖/‖δ_out‖) and/or the forward activations (rms_out/rms_in; their
    variance also evolves as exp(l/ξ) in mean-field theory) is a warning; backward compounding whose end-to-end
    ratio also exceeds AUTOTRAINER's 70 is critical. Non-finite values are left to the non_finite rule.

    Compounding, not the end-to-end ratio alone: in a residual net the stream's gradient also grows by summing
    branches, without any unstable layer. A stock GPT-2-small init (N(0, 0.02)) measures an end-to-end ratio of
    about 20, its LayerNorms amplifying δ by 1/RMS of a tiny residual stream, and trains fine."""
    b = m.budget
    chain = budget_layers(m.layers)
    backward, backward_run = compounding(chain, lambda layer: layer.gain)
    backward *= undone_below(chain, backward_run, lambda below, first: below.delta_out / first.delta_in)
    erased = normalised_next(m.layers)
    forward, forward_run = compounding(m.layers, lambda layer: math.nan if layer.name in erased else layer.forward_gain)
    forward *= undone_below(m.layers, forward_run, lambda below, first: first.rms_in / below.rms_out)
    if not (backward > GROWTH or forward > GROWTH):
        return _through_normalisation(m)
    family = activation_family(m.layers)
    if backward > GROWTH:
        remedies = ranked(init_for(family), "lsuv_init", "clip_grad_norm", "insert_norm:batch", "reduce_depth")
        layers = top_layers([layer for layer in m.layers if layer.name in backward_run], sign=+1)
    else:
        remedies = ranked(init_for(family), "lsuv_init", "insert_norm:batch", "insert_norm:layer")
        layers = forward_run
    growth, growth_run, signal = (backward, backward_run, "backward signal") if backward > GROWTH else \
        (forward, forward_run, "forward activations' RMS")
    measured = f"the {signal} grows x{growth:.3g}{_over(growth_run)}" + \
        (f"; δ ratio first/last {b.through_depth:.3g}" if backward > GROWTH else "")
    which = " and ".join(w for w, g in (("backward signal", backward), ("forward activations", forward)) if g > GROWTH)
    return [Finding(
        kind="exploding_gradient",
        severity="critical" if backward > GROWTH and b.through_depth > CRITICAL else "warning",
        scope="depth",
        layers=layers,
        evidence={
            "backward": backward > GROWTH, "forward": forward > GROWTH,
            "backward_growth": backward, "backward_growth_layers": _ends(backward_run),
            "forward_growth": forward, "forward_growth_layers": _ends(forward_run),
            "ratio": b.through_depth, "end_to_end": b.end_to_end, "from": b.first, "to": b.last,
            "depth": b.depth, "xi": b.xi,
            "mechanism": mechanism(b, sign=+1) if backward > GROWTH else "forward scale",
            "orders_gained_by_activations": orders(b.by_role["activation"]),
            "orders_gained_by_weights": orders(b.by_role["weights"]),
        },
        remedies=remedies, rationale=rationale(remedies, measured),
        summary=f"the {which} grow layer after layer with no normalisation between: backward x{backward:.3g}"
                f"{_over(backward_run)}, forward x{forward:.3g}{_over(forward_run)}; δ ratio first/last "
                f"{b.through_depth:.3g}",
    )]


def _through_normalisation(m: Measurement) -> list[Finding]:
    """Critical when a plain chain with normalisation layers has a δ ratio first/last above CRITICAL."""
    b = m.budget
    norms = [layer.name for layer in m.layers if layer.normalizes]
    plain = math.isfinite(b.remainder) and abs(b.remainder) < CHAIN_TOLERANCE
    gains = [layer.gain for layer in budget_layers(m.layers) if layer.gain > 0 and math.isfinite(layer.gain)]
    if not (norms and plain and gains and b.through_depth / max(max(gains), 1.0) > CRITICAL):
        return []
    remedies = ranked("add_residual", "clip_grad_norm", "reduce_depth")
    measured = (f"δ ratio first/last {b.through_depth:.3g} over {b.depth} layers, through {len(norms)} normalisation "
                "layers and no skip connection")
    return [Finding(
        kind="exploding_gradient", severity="critical", scope="depth",
        layers=top_layers(budget_layers(m.layers), sign=+1),
        evidence={"backward": True, "forward": False, "through_normalisation": True, "normalisation_layers": len(norms),
                  "ratio": b.through_depth, "end_to_end": b.end_to_end, "from": b.first, "to": b.last,
                  "depth": b.depth, "xi": b.xi, "unattributed_orders": orders(b.remainder)},
        remedies=remedies, rationale=rationale(remedies, measured),
        summary=f"the gradient grows towards the input through the normalised layers: {measured}",
    )]


def compounding(layers: list[LayerStats], gain: Callable[[LayerStats], float]) -> tuple[float, list[str]]:
    """The largest product of consecutive layers' gains (forward order), and those layers.

    Normalisation layers reset the scale by construction (their gain is 1/RMS of their input), so a run ends at
    one and is not counted through it; so does a layer whose gain was not measured (e.g. an embedding of token
    ids) and a recurrent layer (its gain is judged on the time axis).

    >>> compounding(layers, lambda layer: layer.forward_gain)  # 30 ReLU layers, weight variance 3/fan_in
    (437.0, ['0', '1', ..., '59'])
    """
    best, best_run = 1.0, []
    log_run, run = 0.0, []
    for layer in layers:
        value = gain(layer)
        if layer.normalizes or layer.role == "recurrent" or not (value > 0 and math.isfinite(value)):
            log_run, run = 0.0, []
            continue
        if log_run <= 0:  # Kadane: a run that has not grown is dropped
            log_run, run = 0.0, []
        log_run += math.log(value)
        run.append(layer.name)
        if log_run > math.log(best):
            best, best_run = math.exp(log_run), list(run)
    return best, best_run


def undone_below(layers: list[LayerStats], run: list[str], gap: Callable[[LayerStats, LayerStats], float]) -> float:
    """The factor by which what happens between a growing run and the layer below it (in forward order) shrinks the
    run's growth, when it does (at most 1): a functional rescale that undoes it. T5 multiplies its decoder's output
    by d_model^-0.5 before the tied lm_head, whose gain is then about sqrt(d_model): judged alone, x22.6 in T5-small;
    with the rescale below it, x1 (the model's end-to-end ratio is 0.47).

    >>> undone_below(layers, ["lm_head"], lambda below, first: below.delta_out / first.delta_in)
    0.044
    """
    names = [layer.name for layer in layers]
    if not run or run[0] not in names or names.index(run[0]) == 0:
        return 1.0
    first = layers[names.index(run[0])]
    value = gap(layers[names.index(run[0]) - 1], first)
    return value if 0 < value < 1 and math.isfinite(value) else 1.0


def normalised_next(layers: list[LayerStats]) -> set[str]:
    """The layers whose output goes straight into a normaliser (the next layer, forward order): their forward growth
    is erased by it before any weight sees it (the weight gradients a growth blows up, ∝ input × δ, are those of the
    layers it feeds), and the normaliser divides δ by the same scale on the way back (Ioffe & Szegedy 2015, §3.3:
    backpropagation through a normalised layer does not depend on its weights' scale). A wide first layer at
    N(0, 5²) behind a LayerNorm grows its output x39 and trains normally. A growth over several layers still counts
    up to the input of the last one.

    >>> normalised_next(layers)       # 0: Linear, 1: LayerNorm, 2: ReLU, 3: Linear
    {'0'}
    """
    return {layer.name for layer, above in zip(layers, layers[1:]) if above.normalizes}


def _ends(run: list[str]) -> list[str]:
    return [run[0], run[-1]] if run else []


def _over(run: list[str]) -> str:
    return f" (layers {run[0]}..{run[-1]})" if len(run) > 1 else f" (layer {run[0]})" if run else ""
