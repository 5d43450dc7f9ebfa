"""The repair benchmark's baselines: other decisions in the same `gd.autotrain` loop, on the same diagnosis.

    >>> train_rounds(model, opt, batches, loss_fn, steps, policy=RandomPolicy(seed=0), ...)
    >>> train_rounds(model, opt, batches, loss_fn, steps, policy=AutoTrainerPolicy(), ...)

Both act exactly when gradient-doctor's policy would (the trigger is the same diagnosis: a finding at init, a
finding at a check while restarts are left), so each arm gets the same number of rounds; only what is done
differs.

* **RandomPolicy** (Kim et al., ICST 2023: a random choice of repair matches or beats the published repair tools):
  one or two remedies drawn uniformly from the catalog's surgery and clipping (opt-in ones left out) and a
  learning-rate factor drawn from {0.1, 1, 10}, at every action.
* **AutoTrainerPolicy**: AUTOTRAINER's (Zhang et al., ICSE 2021) problem -> solution table, its default
  "balance" order as published in its repository (utils/repair.py, `repair_strategy`), each problem's next
  untried solution at each action. Mapping to this library: vanishing gradient (also saturation) -> SELU, ReLU,
  batch norm; exploding gradient (also non-finite) -> SELU, ReLU, gradient clipping (by value), tanh, batch norm;
  dying ReLU -> SELU, batch norm, He init, LeakyReLU; unstable loss (oscillation, divergence, large updates) ->
  Adam (not available: an optimizer class swap; skipped), learning rate x0.1, ...; slow convergence (plateau) ->
  another optimizer (skipped), learning rate x10. A problem outside its table (input scale) gets no action.
"""

from __future__ import annotations

import random

from gradient_doctor.autotrain.policy import LATEST_RESTART, Decision, serious
from gradient_doctor.catalog import ENTRIES
from gradient_doctor.diagnose import Diagnosis

#: AUTOTRAINER's problems, from this library's finding kinds.
PROBLEM = {
    "vanishing_gradient": "vanish", "saturated_activation": "vanish",
    "exploding_gradient": "explode", "non_finite": "explode",
    "dead_units": "dying_relu",
    "loss_oscillation": "unstable", "loss_divergence": "unstable", "large_updates": "unstable",
    "loss_plateau": "not_converge",
}
#: Its "balance" strategy per problem, as (remedies, clipping, learning-rate factor) steps.
STRATEGY = {
    "vanish": [(["swap_activation:selu"], [], 1.0), (["swap_activation:relu"], [], 1.0),
               (["insert_norm:batch"], [], 1.0)],
    "explode": [(["swap_activation:selu"], [], 1.0), (["swap_activation:relu"], [], 1.0),
                ([], ["clip_grad_value"], 1.0), (["swap_activation:tanh"], [], 1.0), (["insert_norm:batch"], [], 1.0)],
    "dying_relu": [(["swap_activation:selu"], [], 1.0), (["insert_norm:batch"], [], 1.0), (["he_init"], [], 1.0),
                   (["swap_activation:leaky_relu"], [], 1.0)],
    "unstable": [([], [], 0.1)],
    "not_converge": [([], [], 10.0)],
}
_SURGERY = [name for name, e in ENTRIES.items() if e.family in ("init", "activation", "architecture") and not e.opt_in]
_CLIPPING = [name for name, e in ENTRIES.items() if e.family == "training"]


def _acts(diagnosis: Diagnosis, step: int | None, steps: int, restarts_left: int) -> bool:
    """A finding at init, or at a check while restarts are left in the first LATEST_RESTART of the budget (when
    gradient-doctor's policy restarts or adjusts)."""
    found = serious(diagnosis)
    if step is None:
        return bool(found)
    return bool(found) and restarts_left > 0 and step <= LATEST_RESTART * steps


class RandomPolicy:
    def __init__(self, seed: int = 0):
        self.random = random.Random(seed)

    def _draw(self, diagnosis: Diagnosis) -> Decision:
        picked = self.random.sample(_SURGERY + _CLIPPING, self.random.choice((1, 2)))
        return Decision("restart", "random repair: " + ", ".join(picked),
                        [n for n in picked if n in _SURGERY], self.random.choice((0.1, 1.0, 10.0)),
                        [n for n in picked if n in _CLIPPING])

    def unremedied(self, decision: Decision) -> Decision:
        return decision  # restarts as drawn: a random repair does not look at its outcome

    def at_init(self, diagnosis: Diagnosis) -> Decision:
        return self._draw(diagnosis) if _acts(diagnosis, None, 0, 1) else Decision("go_on")

    def at_check(self, diagnosis: Diagnosis, *, step: int, steps: int, restarts_left: int) -> Decision:
        return self._draw(diagnosis) if _acts(diagnosis, step, steps, restarts_left) else Decision("go_on")


class AutoTrainerPolicy:
    def __init__(self) -> None:
        self.tried: dict[str, int] = {}

    def _next(self, diagnosis: Diagnosis) -> Decision:
        for finding in serious(diagnosis):
            problem = PROBLEM.get(finding.kind)
            if problem is None or self.tried.get(problem, 0) >= len(STRATEGY[problem]):
                continue
            remedies, clipping, factor = STRATEGY[problem][self.tried.get(problem, 0)]
            self.tried[problem] = self.tried.get(problem, 0) + 1
            return Decision("restart", f"AUTOTRAINER {problem}: {', '.join(remedies + clipping) or f'lr x{factor:g}'}",
                            remedies, factor, clipping)
        return Decision("go_on")

    def unremedied(self, decision: Decision) -> Decision:
        return decision  # AUTOTRAINER restarts with each solution it tries

    def at_init(self, diagnosis: Diagnosis) -> Decision:
        return self._next(diagnosis) if _acts(diagnosis, None, 0, 1) else Decision("go_on")

    def at_check(self, diagnosis: Diagnosis, *, step: int, steps: int, restarts_left: int) -> Decision:
        return self._next(diagnosis) if _acts(diagnosis, step, steps, restarts_left) else Decision("go_on")

