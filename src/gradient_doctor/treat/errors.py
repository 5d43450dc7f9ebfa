"""Errors raised by remedies.

    >>> try:
    ...     to_lstm(nn.Linear(3, 3))
    ... except NotApplicable as err:
    ...     print(err)   # to_lstm: the model has no nn.RNN module
"""

from ..errors import GradientDoctorError


class NotApplicable(GradientDoctorError):
    """A remedy found nothing in the model to act on (e.g. `to_lstm` without an nn.RNN); the model is unchanged."""
