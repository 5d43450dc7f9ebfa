"""How far a checkup is from healthy, and whether a remedy moved it closer.

    >>> before, after = Health.of(checkup(model, x)), Health.of(checkup(treated, x))
    >>> before.orders_off, after.orders_off
    (7.9, 0.4)
    >>> worse_reason(before, after) is None   # kept: fewer problems, nothing new, budget closer to 1
    True

`orders_off` is the distance of the gradient budget from balance in orders of magnitude: |log10| of the
end-to-end backward ratio through depth, plus, for each recurrent module, |log10| of the gradient that reaches
the first time step relative to the last. Non-finite ratios count as `CAP` orders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..diagnose.finding import Diagnosis

#: A ratio of 0 or inf, or a non-finite measurement, counts as this many orders of magnitude off.
CAP = 60.0
#: A remedy must bring the budget at least this much closer (orders of magnitude) to count as an improvement
#: on its own; measured budgets of the same model differ by far less (the batch and readout are fixed).
MIN_GAIN = 0.1


@dataclass(frozen=True)
class Health:
    critical: frozenset[str]  # finding kinds at severity critical
    warning: frozenset[str]  # ... at severity warning
    problems: int  # warning and critical findings
    orders_off: float

    @classmethod
    def of(cls, diagnosis: Diagnosis) -> Health:
        serious = [f for f in diagnosis.findings if f.severity in ("warning", "critical")]
        return cls(
            frozenset(f.kind for f in serious if f.severity == "critical"),
            frozenset(f.kind for f in serious if f.severity == "warning"),
            len(serious),
            orders_off(diagnosis),
        )

    @property
    def healthy(self) -> bool:
        return self.problems == 0


def orders_off(diagnosis: Diagnosis) -> float:
    """|log10| of the depth ratio plus each recurrent module's first-step ratio; CAP for each non-finite one.

        >>> orders_off(checkup(model, x))   # 1e-8 end to end through depth: 8.0
    """
    m = diagnosis.measurement
    if m is None:
        return math.nan
    ratios = [m.budget.through_depth] + [float(t.relative[0]) for t in m.recurrent if len(t.relative)]
    return sum(_orders(r) for r in ratios)


def worse_reason(before: Health, after: Health) -> str | None:
    """Why `after` is not an improvement on `before` (None when it is): a new kind of problem, more critical
    problems, or neither fewer problems nor a budget at least MIN_GAIN orders closer to balance. A remedy that leaves
    no warning or critical finding at all is an improvement whatever the budget.

        >>> worse_reason(Health.of(before), Health.of(after))
        'gradient budget not closer to balance (7.5 -> 7.5 orders off)'
    """
    new = (after.critical | after.warning) - (before.critical | before.warning)
    if new:
        return f"introduces {', '.join(sorted(new))}"
    if len(after.critical) > len(before.critical):
        return f"more critical problems ({len(before.critical)} -> {len(after.critical)} critical finding kinds)"
    if after.problems > before.problems:
        return f"more problems ({before.problems} -> {after.problems} warning/critical findings)"
    closer = before.orders_off - after.orders_off
    if after.problems == 0 < before.problems:  # healthy by every rule: how far from balance no longer matters
        return None
    if after.problems < before.problems and closer > -MIN_GAIN:
        return None
    if closer >= MIN_GAIN:
        return None
    return f"gradient budget not closer to balance ({before.orders_off:.1f} -> {after.orders_off:.1f} orders off)"


def _orders(ratio: float) -> float:
    if not math.isfinite(ratio) or ratio <= 0:
        return CAP
    return min(abs(math.log10(ratio)), CAP)
