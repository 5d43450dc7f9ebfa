"""One exception root for everything gradient-doctor raises on purpose.

    >>> try:
    ...     gd.load("no/such/dir")
    ... except gd.GradientDoctorError as err:
    ...     print(err)
"""


class GradientDoctorError(Exception):
    """Root of every error raised by gradient-doctor."""


class RecordError(GradientDoctorError):
    """A run record is missing, corrupt, foreign, of an unknown version, or already in use."""


class RunClosedError(GradientDoctorError):
    """The run was used after `close()` (or after its `with` block ended)."""
