"""Findings that explain others come first: the reader sees the cause, and each finding that follows from it says so.

    >>> [(f.kind, f.severity) for f in by_cause([vanishing_critical, dead_units_warning])]
    [('dead_units', 'critical'), ('vanishing_gradient', 'critical')]

A cause found beside a finding it explains takes that finding's severity when it is higher (dead units that make the
gradient vanish are as severe as the vanishing), is listed just before it (a `non_finite` finding listed earlier stays
first), and the explained finding gets `evidence["follows_from"]` and a note in its summary. Causes chain (off-scale
inputs saturate the first layer, whose saturation makes the gradient vanish): a cause is listed before everything
that follows from it, directly or not, and takes the highest severity among them. Only warning and critical findings
explain or are explained, and a cause never follows what it would explain: when both carry `evidence["first_step"]`
(run findings), the cause must have begun strictly earlier — except that an update is computed from the gradient of
its own step, so updates that turn large on the step the gradients rose are the rise's result (a corrupted batch
x1000 under SGD), not a learning rate's: the learning rate is blamed when its steps were already too large before.
"""

from __future__ import annotations

from dataclasses import replace

from .finding import SEVERITIES, Finding

#: cause -> the kinds it explains, each with the reason.
EXPLAINS: dict[str, tuple[str, ...]] = {
    # off-scale inputs put the first layer's pre-activations in the tails (saturation) or scale every layer's
    # gradient with them (LeCun et al. 1998): fix the data before judging the depth
    "input_scale": ("saturated_activation", "vanishing_gradient", "exploding_gradient"),
    # a saturated unit passes almost no gradient (σ' and tanh' near 0 in the tails): the vanishing follows. A
    # backward signal that grows through saturating layers grows by weights large enough to push their
    # pre-activations into the tails: one cause (the init's scale; xavier_init is the first remedy of both), read
    # first where it stops learning (Glorot & Bengio 2010). Measured on the zoo's dev split: tanh MLP and CNN at
    # N(0, 1) grow x44 and x217 through depth at checkup and are saturated; their watched runs show saturation and
    # never a gradient explosion
    "saturated_activation": ("vanishing_gradient", "exploding_gradient"),
    # a dead ReLU unit passes exactly none: the gradient below it vanishes with it
    "dead_units": ("vanishing_gradient",),
    # steps that rewrite a tenth of the weights make gradients and the loss jump: the learning rate comes first
    "large_updates": ("exploding_gradient", "loss_divergence", "loss_oscillation", "loss_plateau"),
    # under SGD a step is lr x gradient: a gradient x1000 makes a step x1000 (only when it is seen first: SAME_STEP),
    # and the loss rises with the weights it throws off
    "exploding_gradient": ("large_updates", "loss_divergence"),
}
#: (cause, explained) pairs where the cause may begin on the same step as what it explains (the update is computed
#: from its step's gradient); such a pair also needs both first steps: without them the order cannot be told.
SAME_STEP = {("exploding_gradient", "large_updates")}


def by_cause(findings: list[Finding]) -> list[Finding]:
    """`findings` with causes before what they explain (see the module docstring); others keep their order."""
    alarming = [f for f in findings if f.severity != "info"]
    first: dict[str, Finding] = {}
    for f in alarming:
        first.setdefault(f.kind, f)
    cause_of: dict[str, str] = {}  # explained kind -> its direct cause's kind (the first that explains it)
    for cause in first.values():
        for kind in EXPLAINS.get(cause.kind, ()):
            if kind in first and kind not in cause_of and _may_explain(cause, first[kind]) \
                    and not _descends(cause.kind, kind, cause_of):
                cause_of[kind] = cause.kind
    if not cause_of:
        return findings
    worst = {kind: max((f.severity for f in alarming if f.kind == kind), key=SEVERITIES.index) for kind in first}
    raised: dict[str, str] = {}  # cause kind -> the highest severity of what follows from it, itself included
    for kind in cause_of:
        up = kind
        while up in cause_of:
            up = cause_of[up]
            raised[up] = max(raised.get(up, worst[up]), worst[kind], key=SEVERITIES.index)
    out: list[Finding] = []
    placed: set[str] = set()

    def place(kind: str) -> None:  # the findings of a kind, then what follows from them, in their order
        placed.add(kind)
        for f in alarming:
            if f.kind == kind:
                note = {"evidence": {**f.evidence, "follows_from": cause_of[kind]},
                        "summary": f"{f.summary} (follows from {cause_of[kind]})"} if kind in cause_of else {}
                out.append(replace(f, severity=max(f.severity, raised.get(kind, f.severity), key=SEVERITIES.index),
                                   **note))
        for f in alarming:
            if cause_of.get(f.kind) == kind and f.kind not in placed:
                place(f.kind)

    for f in findings:
        if f.severity == "info":
            out.append(f)
        elif f.kind not in placed:
            root = f.kind
            while root in cause_of:
                root = cause_of[root]
            place(root)
    return out


def _may_explain(cause: Finding, explained: Finding) -> bool:
    """Whether `cause` began before `explained` (see the module docstring): False when both say where they began
    (`evidence["first_step"]`) and the cause did not begin strictly earlier (or, for a SAME_STEP pair, later); a
    SAME_STEP pair needs both."""
    began, then = cause.evidence.get("first_step"), explained.evidence.get("first_step")
    same_step = (cause.kind, explained.kind) in SAME_STEP
    if isinstance(began, int) and isinstance(then, int):
        return began < then or (same_step and began == then)
    return not same_step


def _descends(kind: str, ancestor: str, cause_of: dict[str, str]) -> bool:
    """Whether `ancestor` is already among `kind`'s causes, up the chain (an edge back to it would be a cycle)."""
    while kind in cause_of:
        kind = cause_of[kind]
        if kind == ancestor:
            return True
    return False
