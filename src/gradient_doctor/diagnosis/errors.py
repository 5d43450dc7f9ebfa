"""The error `checkup` raises when a model and batch cannot be measured.

    >>> try:
    ...     gd.checkup(model_without_trainable_parameters, x)
    ... except gd.GradientDoctorError as err:
    ...     print(err)
"""

from ..errors import GradientDoctorError


class CheckupError(GradientDoctorError):
    """The batch ran, but no gradient could be measured (what was expected and what was got is in the message)."""


class TrainingStopped(GradientDoctorError):
    """Raised out of `optimizer.step()` (or `run.step()`) when a finding of a kind in `stop_on` appears.

    >>> try:
    ...     train(model, opt)  # under gd.watch(model, opt, stop_on={"non_finite"})
    ... except gd.TrainingStopped as stop:
    ...     print(stop.finding.evidence)
    """

    def __init__(self, finding):
        self.finding = finding
        super().__init__(
            f"training stopped by gradient-doctor: {finding.severity} {finding.kind} at "
            f"{', '.join(finding.layers) or 'the run'}: {finding.summary}"
        )
