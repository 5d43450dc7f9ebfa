"""Every exception gradient-doctor raises on purpose, under one root.

    >>> try:
    ...     gd.load("no/such/dir")
    ... except gd.GradientDoctorError as err:
    ...     print(err)
"""

from __future__ import annotations

from typing import Any


class GradientDoctorError(Exception):
    """Root of every error raised by gradient-doctor."""


class InvalidValue(GradientDoctorError, ValueError):
    """An argument of the right type with a value gradient-doctor cannot use; the message says what was expected
    and what was got. Also a ValueError."""


class InvalidType(GradientDoctorError, TypeError):
    """An argument of a type gradient-doctor cannot use; the message says what was expected and what was got. Also
    a TypeError."""


class UnknownName(GradientDoctorError, KeyError):
    """A metric, layer or parameter name the run does not have; the message lists the known ones. Also a KeyError.

    >>> run.history("grad_nrom")   # UnknownName: unknown metric 'grad_nrom'; this run has: grad_norm, ...
    """


class RecordError(GradientDoctorError):
    """A run record is missing, corrupt, foreign, of an unknown version, or already in use."""


class RunClosedError(GradientDoctorError):
    """The run was used after `close()` (or after its `with` block ended)."""


class CheckupError(GradientDoctorError):
    """The batch ran, but no gradient could be measured (what was expected and what was got is in the message)."""


class TrainingStopped(GradientDoctorError):
    """Raised out of `optimizer.step()` (or `run.step()`) when a finding of a kind in `stop_on` appears.

    >>> try:
    ...     train(model, opt)  # under gd.watch(model, opt, stop_on={"non_finite"})
    ... except gd.TrainingStopped as stop:
    ...     print(stop.finding.evidence)
    """

    def __init__(self, finding: Any):
        self.finding = finding
        super().__init__(
            f"training stopped by gradient-doctor: {finding.severity} {finding.kind} at "
            f"{', '.join(finding.layers) or 'the run'}: {finding.summary}"
        )


class NotApplicable(GradientDoctorError):
    """A remedy found nothing in the model to act on (e.g. `to_lstm` without an nn.RNN); the model is unchanged.

    >>> try:
    ...     to_lstm(nn.Linear(3, 3))
    ... except NotApplicable as err:
    ...     print(err)   # to_lstm: the model has no nn.RNN module
    """


class UnsafeRemedy(GradientDoctorError):
    """A remedy refused because it is known to make this model worse (e.g. batch norm in a deep net without skip
    connections, Yang et al. 2019); the model is unchanged. The remedy's message names the option that overrides."""


class DistributedProbeError(GradientDoctorError):
    """The probe failed on one rank of a distributed run: it raises there instead of switching itself off
    (a rank that stops measuring would skip collectives the other ranks wait in: a crash beats a hang)."""


class CommandError(GradientDoctorError):
    """The MODULE:FACTORY, the batch file or the shape given on the command line cannot be used."""
