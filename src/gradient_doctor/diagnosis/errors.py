"""The error `checkup` raises when a model and batch cannot be measured.

    >>> try:
    ...     gd.checkup(model_without_trainable_parameters, x)
    ... except gd.GradientDoctorError as err:
    ...     print(err)
"""

from ..errors import GradientDoctorError


class CheckupError(GradientDoctorError):
    """The batch ran, but no gradient could be measured (what was expected and what was got is in the message)."""
