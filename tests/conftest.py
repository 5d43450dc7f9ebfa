"""Shared fixtures.

    >>> pytestmark = pytest.mark.usefixtures("one_thread")     # in a test module of small models
"""

from __future__ import annotations

import pytest

from gradient_doctor.lab.train import single_thread


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one CPU thread for the whole module (restored after): small nets step fastest on one thread, and on a
    shared 2-core machine extra intra-op threads only wait for busy cores (about 10x slower)."""
    with single_thread():
        yield
