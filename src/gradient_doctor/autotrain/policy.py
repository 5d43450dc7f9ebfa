"""What `gd.autotrain` does about a diagnosis: go on, adjust in place, or restart with a re-treatment.

    >>> decision = DoctorPolicy().at_check(run.diagnose(), step=30, steps=300, restarts_left=2)
    >>> decision.action, decision.remedies, decision.lr_factor
    ('restart', ['vanishing_gradient (critical)'], 1.0)

The policy sees findings, never the model: the loop (loop.py) carries its decision out. The same loop runs the
repair benchmark's baselines (a random choice of remedies, AUTOTRAINER's problem -> solution table) through this
interface, so the comparison differs only in the decisions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ..catalog import ENTRIES
from ..diagnose.finding import Diagnosis, Finding

#: The factor each group's learning rate is multiplied by for learning-rate advice without a measured size.
LR_ADVICE = {"increase_lr": 10.0, "decrease_lr": 0.1}
#: Findings a restart can treat: their remedies change the model (init, activation, architecture, the inputs).
STRUCTURAL = ("vanishing_gradient", "exploding_gradient", "saturated_activation", "dead_units", "input_scale")
#: A restart after this share of the budget wastes more than it can win back: later findings are handled in place.
LATEST_RESTART = 0.5
#: A plateau's `decrease_lr` is followed only when its weights moved at least this many times their own norm over the
#: window (`weight_movement`, an upper bound: median relative update x steps) while the loss stayed flat: steps that
#: rewrite the weights wholesale. A flat loss with modest movement is common early in training (on the zoo's dev
#: split a healthy tanh RNN, 0.03 of its norm in 30 steps, before it started to learn); a post-LN transformer left at
#: SGD lr 3 after a non-finite restart moved 200x its norm and stayed at chance.
OVERSHOOT_MOVEMENT = 1.0
#: Structural findings that training itself can cause from a healthy init (units killed, activations pushed into
#: their tails, gradients grown by large steps): when no surgery helps, the learning rate is what to lower.
TRAINING_INDUCED = ("dead_units", "saturated_activation", "exploding_gradient")


@dataclass(frozen=True)
class Decision:
    """What to do: "go_on", "adjust" (in place: learning rate, clipping) or "restart" (from the initial weights,
    re-treated with `remedies`: a Diagnosis or remedy names). `why` says it in a sentence."""

    action: str
    why: str = ""
    remedies: Diagnosis | list[str] | None = None
    lr_factor: float = 1.0
    clipping: list[str] = field(default_factory=list)  # clipping remedies to attach to the optimizer


class Policy(Protocol):
    def at_init(self, diagnosis: Diagnosis) -> Decision: ...
    def at_check(self, diagnosis: Diagnosis, *, step: int, steps: int, restarts_left: int) -> Decision: ...
    def unremedied(self, decision: Decision) -> Decision: ...


def serious(diagnosis: Diagnosis) -> list[Finding]:
    return [f for f in diagnosis.findings if f.severity in ("warning", "critical")]


def lr_advice(findings: list[Finding]) -> tuple[str | None, float]:
    """The first learning-rate advice among the findings' ranked remedies and its factor: a plateau's measured
    `lr_factor` when it gives one, else LR_ADVICE's. A plateau's `decrease_lr` (the weights move, the loss does not)
    is acted on only when the weights moved at least OVERSHOOT_MOVEMENT times their norm: with less it fired on a
    healthy tanh RNN of the zoo's dev split before it started to learn.

    >>> lr_advice([Finding("loss_plateau", "warning", "run", [], {"lr_factor": 300.0}, ["increase_lr"])])
    ('increase_lr', 300.0)
    """
    for finding in findings:
        for name in finding.remedies:
            if name == "decrease_lr" and finding.kind == "loss_plateau" and not _rewritten([finding]):
                continue  # a flat loss while the weights move a little is common early in training
            if name in LR_ADVICE:
                sized = finding.evidence.get("lr_factor") if name == "increase_lr" else None
                return name, float(sized) if sized else LR_ADVICE[name]
    return None, 1.0


def clipping(findings: list[Finding]) -> list[str]:
    """The clipping remedies the findings rank (attached to the optimizer, not verified on the batch)."""
    names = [n for f in findings for n in f.remedies if n in ENTRIES and ENTRIES[n].family == "training"]
    return list(dict.fromkeys(names))


class DoctorPolicy:
    """gradient-doctor's own decisions, from its diagnosis and its ranked remedies.

    At init: treat what the checkup finds (verified surgery, clipping attached, learning-rate advice followed).
    At a check during training: a structural finding (STRUCTURAL), or a learning rate far too large (a divergence,
    or a plateau whose steps rewrote the weights), while restarts are left and before LATEST_RESTART of the budget
    restarts from the initial weights, re-treated for it (the learning rate scaled); other learning-rate advice (a
    plateau's larger rate, large updates, later findings) and clipping are applied in place, training goes on;
    non-finite
    gradients are the guard's (skipped updates), so they never restart a run on their own.
    """

    def at_init(self, diagnosis: Diagnosis) -> Decision:
        found = serious(diagnosis)
        if not found:
            return Decision("go_on", "the checkup at init found nothing to treat")
        advice, factor = lr_advice(found)
        return Decision("restart", "checkup at init: " + _kinds(found), diagnosis, factor, clipping(found))

    def at_check(self, diagnosis: Diagnosis, *, step: int, steps: int, restarts_left: int) -> Decision:
        found = serious(diagnosis)
        if not found:
            return Decision("go_on")
        advice, factor = lr_advice(found)
        structural = [f for f in found if f.kind in STRUCTURAL]
        # a learning rate far too large has rewritten the weights (a flat loss while they moved OVERSHOOT_MOVEMENT
        # times their norm, or a diverged loss): the budget is better spent from the start at the new rate than from
        # these weights. One far too small has left them where they started: raised in place, nothing is lost that a
        # restart would win back (measured on the repair zoo: the same repairs, 3 of 5 plateaus a little better)
        resize = advice == "decrease_lr" and (_rewritten(found) or _diverged(found))
        if (structural or resize) and restarts_left > 0 and step <= LATEST_RESTART * steps:
            return Decision("restart", _kinds(found), Diagnosis(found), factor, clipping(found))
        if advice or clipping(found):
            return Decision("adjust", _kinds(found), None, factor, clipping(found))
        return Decision("go_on", _kinds(found))

    def unremedied(self, decision: Decision) -> Decision:
        """A restart whose re-treatment changed nothing (no surgery kept, no learning-rate factor, no new clipping)
        would train the same model the same way again. A problem that training caused from an init the checkup
        passed (TRAINING_INDUCED) restarts at a tenth of the learning rate instead; anything else goes on."""
        found = serious(decision.remedies) if isinstance(decision.remedies, Diagnosis) else []
        if any(f.kind in TRAINING_INDUCED for f in found):
            return Decision("restart", decision.why + "; no remedy changed the initial model: learning rate x0.1",
                            [], LR_ADVICE["decrease_lr"], decision.clipping)
        return Decision("go_on", decision.why + "; no remedy changed the initial model")


def _rewritten(findings: list[Finding]) -> bool:
    """A flat loss while the weights moved at least OVERSHOOT_MOVEMENT times their norm."""
    return any(f.kind == "loss_plateau" and (f.evidence.get("weight_movement") or 0.0) >= OVERSHOOT_MOVEMENT
               for f in findings)


def _diverged(findings: list[Finding]) -> bool:
    """The loss rose well above its level and the progress made (`loss_divergence`): the weights are in a worse place
    than where they started."""
    return any(f.kind == "loss_divergence" for f in findings)


def _kinds(findings: list[Finding]) -> str:
    return ", ".join(dict.fromkeys(f"{f.kind} ({f.severity})" for f in findings))
