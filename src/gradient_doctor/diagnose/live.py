"""Findings while training goes on: `gd.watch(..., on_finding=..., stop_on=..., check_every=...)`.

    >>> with gd.watch(model, opt, on_finding=print, stop_on={"non_finite"}, check_every=50) as run:
    ...     train(model, opt, run)      # raises gd.TrainingStopped at the first non-finite check

Every `check_every` steps the run's buffered steps are flushed (the one device→host transfer a
flush always is: no other sync) and `run.diagnose()` judges the recent window. Each warning or
critical finding is reported once per (kind, scope): a RuntimeWarning, then `on_finding(finding)`;
a kind in `stop_on` then raises `TrainingStopped`. A finding is seen at most `check_every` steps
after the step that caused it. An internal error of the check warns once and switches the checks
off; training goes on.

Distributed runs: each rank's record holds its own loss, so a loss-based finding could fire on one
rank only, which would then stop while the others wait in DDP's next all-reduce. Rank 0 alone
diagnoses; its findings are broadcast, and every rank reports them (warnings on rank 0 only),
calls `on_finding` and raises `TrainingStopped` at the same step.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Protocol

from ..errors import InvalidType, InvalidValue, TrainingStopped
from ..probe.distributed import from_writer, is_writer
from .finding import KINDS, Diagnosis, Finding


class Diagnosable(Protocol):
    """What the monitor checks: the run gd.watch hands over (a record that can diagnose a window of itself)."""

    def diagnose(self, window: int | None = None) -> Diagnosis: ...

#: The window judged at each check: the last WINDOW_CHECKS checks' steps, and at least MIN_WINDOW steps,
#: so that the rules' medians and trends have points at the default cadences (every 50th step for
#: updates and activations) without re-reading the whole run at every check.
WINDOW_CHECKS, MIN_WINDOW = 4, 200


class LiveMonitor:
    """Checks a live run's recent window and reports each new warning/critical finding once."""

    def __init__(self, on_finding: Callable[[Finding], object] | None, stop_on: Iterable[str], check_every: int):
        if on_finding is not None and not callable(on_finding):
            raise InvalidType(f"gd.watch: on_finding must be callable (finding) -> None, got {type(on_finding).__name__}")
        if isinstance(stop_on, str):
            stop_on = {stop_on}
        self.stop_on = frozenset(stop_on)
        unknown = sorted(self.stop_on - set(KINDS))
        if unknown:
            raise InvalidValue(f"gd.watch: stop_on takes finding kinds {list(KINDS)}; got {unknown}")
        if isinstance(check_every, bool) or not isinstance(check_every, int) or check_every < 1:
            raise InvalidValue(f"gd.watch: check_every must be an integer ≥ 1, got {check_every!r}")
        self.on_finding = on_finding
        self.check_every = check_every
        self.window = max(WINDOW_CHECKS * check_every, MIN_WINDOW)
        self._reported: set[tuple[str, str]] = set()
        self._enabled = True

    def check(self, run: "Diagnosable") -> None:
        """Diagnose the recent window; report new findings; raise TrainingStopped for a `stop_on` kind."""
        if not self._enabled:
            return
        writer = is_writer()
        findings = self._diagnose(run) if writer else None
        findings = from_writer(findings)  # distributed: every rank acts on rank 0's findings, at this step
        if findings is None:
            self._enabled = False
            return
        for finding in findings:
            key = (finding.kind, finding.scope)
            if finding.severity == "info" or key in self._reported:
                continue
            self._reported.add(key)
            if writer:
                warnings.warn(f"gradient-doctor: {finding.severity} {finding.kind} at "
                              f"{', '.join(finding.layers[:4]) or 'the run'}: {finding.summary}", RuntimeWarning, stacklevel=2)
            if self.on_finding is not None:
                self.on_finding(finding)
            if finding.kind in self.stop_on:
                raise TrainingStopped(finding)

    def _diagnose(self, run: "Diagnosable") -> list[Finding] | None:
        """The recent window's findings; None (warned, checks off) when the check itself fails."""
        try:
            return run.diagnose(window=self.window).findings
        except Exception as err:  # never crash training over a check
            warnings.warn(f"gradient-doctor: the live check failed and is switched off ({type(err).__name__}: {err})",
                          RuntimeWarning, stacklevel=3)
            return None
