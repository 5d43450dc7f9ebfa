"""lab depth-sweep --quick: the end-to-end ratios at init against plain torch and theory, and the claims' verdicts."""

from __future__ import annotations

import importlib.util
import json
import math

import numpy as np
import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import mnist1d
from gradient_doctor.lab.experiment import VERDICTS


@pytest.fixture(scope="module")
def sweep(quick_lab):
    return quick_lab("depth-sweep")


def _row(result, depth, activation, init, arch="plain"):
    (row,) = [r for r in result.rows if (r["depth"], r["activation"], r["init"], r["arch"]) ==
              (depth, activation, init, arch)]
    return row


def _plain_torch_ratio(depth: int, activation: type[nn.Module], seed: int = 0) -> float:
    """‖∂L/∂(first Linear's output)‖ / ‖∂L/∂logits‖ of a default-init MLP, with retain_grad and nothing else."""
    data = mnist1d()
    x, y = data.x_train[:256], data.y_train[:256]
    torch.manual_seed(seed)
    linears = [nn.Linear(40, 64)] + [nn.Linear(64, 64) for _ in range(depth - 2)] + [nn.Linear(64, 10)]
    first = linears[0](x)
    first.retain_grad()
    h = activation()(first)
    for layer in linears[1:-1]:
        h = activation()(layer(h))
    logits = linears[-1](h)
    logits.retain_grad()
    nn.functional.cross_entropy(logits, y).backward()
    return float(first.grad.norm() / logits.grad.norm())


def test_sigmoid_vanishes_at_depth_10_and_matches_plain_torch(sweep):
    result, _ = sweep
    row = _row(result, 10, "sigmoid", "default")
    assert row["ratio"] < 1e-3
    assert row["ratio"] == pytest.approx(_plain_torch_ratio(10, nn.Sigmoid), rel=1e-4)
    assert _row(result, 10, "sigmoid", "he")["ratio"] < 1e-3  # variance 1/fan_in does not save sigmoid


def test_he_relu_keeps_the_gradient_at_depth_10(sweep):
    result, _ = sweep
    assert 0.05 <= _row(result, 10, "relu", "he")["ratio"] <= 20
    assert _row(result, 10, "relu", "default")["ratio"] < 0.05  # PyTorch's default is not He init


def test_sigmoid_decay_per_layer_is_near_the_quarter_bound(sweep):
    """Default nn.Linear weights are U(±1/√fan_in): σ_w = 1/√3; small pre-activations give sigmoid' ≈ 1/4, so
    each layer multiplies ‖δ‖ by about σ_w/4: log10 slope ≈ log10(0.25/√3) = -0.84 per layer."""
    result, _ = sweep
    rows = [_row(result, d, "sigmoid", "default") for d in (5, 10)]
    slope = (math.log10(rows[1]["ratio"]) - math.log10(rows[0]["ratio"])) / 5
    assert slope == pytest.approx(math.log10(0.25 / math.sqrt(3)), abs=0.1)
    assert rows[0]["weight_gain"] == pytest.approx(1 / math.sqrt(3), rel=0.05)
    (claim,) = [c for c in result.claims if c.claim.startswith("sigmoid derivatives")]
    assert claim.verdict == "holds"


def test_batchnorm_and_residual_rescue_the_deep_sigmoid_gradient(sweep):
    result, _ = sweep
    plain = _row(result, 10, "sigmoid", "default")["ratio"]
    for arch in ("batchnorm", "residual"):
        assert math.exp(-3) <= _row(result, 10, "sigmoid", "default", arch)["ratio"] <= math.exp(3)
        assert _row(result, 10, "sigmoid", "default", arch)["ratio"] > 1e3 * plain


def test_training_follows_the_gradient(sweep):
    result, _ = sweep
    vanished = _row(result, 10, "sigmoid", "default")
    alive = _row(result, 5, "relu", "he")
    assert not vanished["diverged"] and not alive["diverged"]
    assert vanished["test_accuracy"] < 0.15  # chance is 0.10: the lower layers never learned
    assert alive["test_accuracy"] > vanished["test_accuracy"] + 0.1


def test_claims_and_files(sweep):
    result, out = sweep
    claims = {c.claim: c for c in result.claims}
    assert len(claims) == 5 and all(c.verdict in VERDICTS for c in claims.values())
    relu = claims["ReLU solves the vanishing gradient problem"]
    assert relu.verdict == "holds with conditions"  # He yes, PyTorch default no (asserted above)
    assert claims["Xavier/He init prevents it (the vanishing gradient)"].verdict == "holds with conditions"
    saved = json.loads((out / "depth-sweep.json").read_text())
    assert len(saved["rows"]) == len(result.rows) == 2 * 2 * 2 * 3
    assert np.isfinite([r["ratio"] for r in saved["rows"]]).all()
    assert (out / "depth-sweep.md").read_text().count("| sigmoid |") == 12
    if importlib.util.find_spec("matplotlib") is not None:  # plots are optional
        assert (out / "depth-sweep-ratio.png").stat().st_size > 0
        assert (out / "depth-sweep-accuracy.png").stat().st_size > 0
