"""Saturated activations over a run: most outputs of a sigmoid/tanh-like layer sit at its bounds on most steps of the
window, where the layer passes almost no gradient (Glorot & Bengio 2010 saw the top sigmoid layer saturate early).

    >>> f = saturated_activation(history)[0]        # inputs x100 into a sigmoid first layer
    >>> f.layers, f.remedies[0]
    (['1'], 'normalize_inputs')
"""

from __future__ import annotations

import numpy as np

from ...record.history import History
from ..finding import Finding
from ..ranking import ranked
from ..rationale import rationale
from ..thresholds import SATURATED
from .series import median, rounded, share

#: A layer is saturated on a step when more than half of its outputs are (SATURATED, as in `checkup`: within 1 % of
#: the output range from a bound, where the derivative is below 4 % of its peak). Sustained: on at least three
#: quarters of the window's recorded steps, and at least MIN_POINTS of them: one odd batch is not a finding, and a
#: unit that is saturated most of the time gets too little gradient to leave its bound.
SUSTAINED_SHARE = 0.75
MIN_POINTS = 3


def saturated_activation(h: History) -> list[Finding]:
    """One warning naming the saturating layers saturated on at least 3/4 of the recorded steps. When the first
    activation layer (forward order) is saturated from its first recorded step while a later saturating layer is
    not, the inputs' scale is the likely cause (the layers after it get bounded inputs and are fine):
    `normalize_inputs` comes first."""
    sat = h.values["saturated_frac"]
    columns = [i for i in range(len(h.layers)) if np.isfinite(sat[:, i]).sum() >= MIN_POINTS]
    hit = [i for i in columns if share(sat[:, i], sat[:, i] > SATURATED) >= SUSTAINED_SHARE]
    if not hit:
        return []
    activations = [i for i in np.flatnonzero(h.numel == 0) if np.isfinite(h.values["act_std"][:, i]).any()]
    first = int(activations[0]) if activations else None
    later = [i for i in columns if first is not None and i > first]
    inputs_likely = bool(first in hit and sat[np.isfinite(sat[:, first]), first][0] > SATURATED
                         and (not later or any(i not in hit for i in later)))
    remedies = ranked(*(("normalize_inputs",) if inputs_likely else ()),
                      "xavier_init", "lsuv_init", "insert_norm:batch", "swap_activation:relu")
    fractions = {i: median(sat[:, i]) for i in hit}
    worst = max(fractions, key=fractions.get)
    kind = f"{h.kinds[worst]} " if worst < len(h.kinds) and h.kinds[worst] else ""
    measured = f"{fractions[worst]:.0%} of layer {h.layers[worst]}'s {kind}outputs saturated (median over " \
               f"{len(h.steps)} steps)"
    calm = next((h.layers[i] for i in later if i not in hit), None)  # a later saturating layer that is not saturated
    why = {"normalize_inputs": f"layer {h.layers[first]} (the first activation) is saturated from its first recorded "
                               "step" + (f", layer {calm} is not" if calm else "")} if inputs_likely else {}
    return [Finding(
        kind="saturated_activation", severity="warning", scope="depth", layers=[h.layers[i] for i in hit],
        evidence={
            "saturated_frac": {h.layers[i]: rounded(fractions[i]) for i in hit},
            "share_of_steps": {h.layers[i]: rounded(share(sat[:, i], sat[:, i] > SATURATED)) for i in hit},
            "threshold": SATURATED, "sustained_share": SUSTAINED_SHARE, "steps": int(len(h.steps)),
            "first_activation_layer": h.layers[first] if first is not None else None, "inputs_likely": inputs_likely,
        },
        remedies=remedies, rationale=rationale(remedies, measured, why),
        summary=f"{len(hit)} saturating layer(s) have more than {SATURATED:.0%} of outputs saturated on at least "
                f"{SUSTAINED_SHARE:.0%} of {len(h.steps)} steps"
                + ("; the first one from the start, so the inputs' scale is the likely cause" if inputs_likely else ""),
    )]
