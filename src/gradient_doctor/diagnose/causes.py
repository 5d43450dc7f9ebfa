"""Findings that explain others come first: the reader sees the cause, and each finding that follows from it says so.

    >>> [(f.kind, f.severity) for f in by_cause([vanishing_critical, dead_units_warning])]
    [('dead_units', 'critical'), ('vanishing_gradient', 'critical')]

A cause found beside a finding it explains takes that finding's severity when it is higher (dead units that make the
gradient vanish are as severe as the vanishing), is listed just before it (a `non_finite` finding listed earlier stays
first), and the explained finding gets `evidence["follows_from"]` and a note in its summary. Only warning and
critical findings explain or are explained, and a cause never follows what it would explain: when both carry
`evidence["first_step"]` (run findings), the cause must have begun strictly earlier. An update is computed from
the gradient of its own step, so updates that turn large on the step the gradients rose are the rise's result (a
corrupted batch x1000 under SGD), not a learning rate's: the learning rate is blamed when its steps were already
too large before.
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
}


def by_cause(findings: list[Finding]) -> list[Finding]:
    """`findings` with causes before what they explain (see the module docstring); others keep their order."""
    alarming = {f.kind for f in findings if f.severity != "info"}
    causes = {f.kind: f for f in findings if f.severity != "info" and f.kind in EXPLAINS}
    cause_of = {}
    first = {f.kind: f for f in findings if f.severity != "info"}
    for kind, cause in causes.items():
        for explained in EXPLAINS[kind]:
            if explained in alarming and explained not in causes and _began_before(cause, first[explained]):
                cause_of.setdefault(explained, cause.kind)
    if not cause_of:
        return findings
    worst = {}
    for f in findings:
        if f.kind in cause_of and f.severity != "info":
            cause = cause_of[f.kind]
            worst[cause] = max(worst.get(cause, causes[cause].severity), f.severity, key=SEVERITIES.index)
    promoted = {kind: replace(causes[kind], severity=severity) for kind, severity in worst.items()}
    out: list[Finding] = []
    for f in findings:
        if f.kind in cause_of and f.severity != "info":
            cause = promoted[cause_of[f.kind]]
            if cause not in out:  # just before the first finding it explains
                out.append(cause)
            out.append(replace(f, evidence={**f.evidence, "follows_from": cause.kind},
                               summary=f"{f.summary} (follows from {cause.kind})"))
        elif f.kind in promoted:
            if promoted[f.kind] not in out:
                out.append(promoted[f.kind])
        else:
            out.append(f)
    return out


def _began_before(cause: Finding, explained: Finding) -> bool:
    """False when both findings say where they began (`evidence["first_step"]`) and the cause did not begin
    strictly before: an effect cannot precede its cause."""
    began, then = cause.evidence.get("first_step"), explained.evidence.get("first_step")
    if isinstance(began, int) and isinstance(then, int):
        return began < then
    return True
