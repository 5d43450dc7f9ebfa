"""Errors raised by remedies.

    >>> try:
    ...     to_lstm(nn.Linear(3, 3))
    ... except NotApplicable as err:
    ...     print(err)   # to_lstm: the model has no nn.RNN module
"""

from ..errors import GradientDoctorError


class NotApplicable(GradientDoctorError):
    """A remedy found nothing in the model to act on (e.g. `to_lstm` without an nn.RNN); the model is unchanged."""


class UnsafeRemedy(GradientDoctorError):
    """A remedy refused because it is known to make this model worse (e.g. batch norm in a deep net without skip
    connections, Yang et al. 2019); the model is unchanged. The remedy's message names the option that overrides."""
