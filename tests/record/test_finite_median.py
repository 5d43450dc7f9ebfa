"""`finite_median` (the run rules' median) against `np.median`, to the bit."""

from __future__ import annotations

import numpy as np
import pytest

from gradient_doctor.record.history import finite_median


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_finite_median_is_np_median_to_the_bit(dtype):
    rng = np.random.default_rng(0)
    for n in [1, 2, 3, 4, 7, 8, 9, 16, 31, 100, 257]:
        for values in (rng.standard_normal(n) * 10.0 ** rng.integers(-30, 30, n),  # mixed magnitudes
                       rng.integers(0, 3, n).astype(float),  # ties
                       np.where(rng.random(n) < 0.3, np.inf, rng.standard_normal(n)),  # infinities
                       rng.random(n) * 1e308):  # middle values whose sum overflows
            with np.errstate(over="ignore"):
                values = values.astype(dtype)
                want, got = np.median(values), finite_median(values)
            assert np.float64(got).tobytes() == np.float64(want).tobytes() or np.isnan(got) and np.isnan(want)
    untouched = np.array([3.0, 1.0, 2.0])
    assert finite_median(untouched) == 2.0 and untouched.tolist() == [3.0, 1.0, 2.0]
