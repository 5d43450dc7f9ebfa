"""Shared fixtures.

    >>> torch.get_num_threads()     # in every test: `one_thread` holds for the whole suite
    1
"""

from __future__ import annotations

import os

import pytest

# Keras 3 is tested on PyTorch: its backend is fixed when keras is first imported (the Keras tests import it)
os.environ["KERAS_BACKEND"] = "torch"

from gradient_doctor.lab.train import single_thread


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Torch on one CPU thread for the whole suite (restored after): the suite's nets are small and step fastest on
    one thread, and on a shared 2-core machine extra intra-op threads only wait for busy cores (an RNN test measured
    133 s on two threads, 23 s on one)."""
    with single_thread():
        yield
