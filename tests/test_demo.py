"""`gradient-doctor demo`: runs end to end and shows what it claims, on a short budget."""

from __future__ import annotations

import io

import numpy as np
from rich.console import Console

import gradient_doctor as gd
from gradient_doctor.lab.demo import run_demo


def test_demo_shows_vanishing_in_the_sigmoid_net_only(tmp_path):
    out = io.StringIO()
    results = run_demo(steps=30, out=str(tmp_path), seed=0, console=Console(file=out, width=120))
    text = out.getvalue()
    assert "gd.checkup before training" in text and "critical vanishing_gradient" in text
    assert "run.diagnose() after training" in text
    sigmoid, relu = results
    for result in results:  # the printed ratios are the record's, recomputed here with numpy
        run = gd.load(result.log_dir)
        linear = [i for i, info in enumerate(run.layer_details) if info.kind == "Linear"]
        grads = run.history("grad_norm")
        np.testing.assert_allclose(result.gradient_ratio, np.nanmedian(grads[:, linear[0]] / grads[:, linear[-2]]))
    assert sigmoid.gradient_ratio < 1e-4 < 1e-2 < relu.gradient_ratio
    assert sigmoid.update_ratio < 1e-4 < 1e-2 < relu.update_ratio
