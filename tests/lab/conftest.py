"""The lab tests' shared quick runs: each experiment's --quick version runs once per session, whichever test
files ask for it (the experiment's own tests and the verdict checks of test_verdicts.py).

    >>> result, out = quick_lab("residual")     # out holds residual.json and residual.md
"""

from __future__ import annotations

import pytest

from gradient_doctor.lab.experiment import run_experiment


@pytest.fixture(scope="session")
def quick_lab(tmp_path_factory):
    cache = {}

    def get(name: str):
        if name not in cache:
            out = tmp_path_factory.mktemp(name)
            cache[name] = (run_experiment(name, quick=True, out=out, seed=0), out)
        return cache[name]

    return get
