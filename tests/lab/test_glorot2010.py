"""lab glorot2010 (quick): the top sigmoid layer drifts to 0 while the lower ones stay near 0.5, and normalised
init flattens the back-propagated gradient variance; each checked against plain torch and the paper's theory."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gradient_doctor.lab.datasets import mnist1d
from gradient_doctor.lab.experiment import VERDICTS
from gradient_doctor.lab.experiments.glorot2010 import QUICK

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def result(quick_lab):
    return quick_lab("glorot2010")


def _rows(result, activation, init, step):
    rows = [r for r in result.rows if (r["activation"], r["init"], r["step"]) == (activation, init, step)]
    return sorted(rows, key=lambda r: r["layer"])


def _plain_net(module: type[nn.Module], init: str, seed: int) -> nn.Sequential:
    """The paper's nets in plain torch: standard U(±1/sqrt(fan_in)) or normalised U(±sqrt(6/(fan_in+fan_out)))."""
    torch.manual_seed(seed)
    sizes = [40] + [QUICK.width] * QUICK.hidden + [10]
    layers: list[nn.Module] = []
    for k, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        linear = nn.Linear(n_in, n_out)
        bound = 1 / math.sqrt(n_in) if init == "standard" else math.sqrt(6 / (n_in + n_out))
        nn.init.uniform_(linear.weight, -bound, bound)
        nn.init.zeros_(linear.bias)
        layers += [linear, module()] if k < QUICK.hidden else [linear]
    return nn.Sequential(*layers)


def _delta_ratio(net: nn.Sequential, x: torch.Tensor, y: torch.Tensor) -> float:
    """Var of dL/dz (per example: summed loss) at hidden layer 1 over the top hidden layer."""
    pre, h = [], x
    for module in net:
        h = module(h)
        if isinstance(module, nn.Linear):
            h.retain_grad()
            pre.append(h)
    nn.functional.cross_entropy(h, y, reduction="sum").backward()
    return (pre[0].grad.var() / pre[QUICK.hidden - 1].grad.var()).item()


def test_structure_verdicts_and_plot(result):
    result, out = result
    assert len(result.rows) == 3 * 2 * 3 * QUICK.hidden  # activations × inits × (init, early, end) × layers
    assert all(c.verdict in VERDICTS for c in result.claims) and len(result.claims) == 4
    assert (out / "glorot2010.json").exists() and (out / "glorot2010.png").stat().st_size > 10_000


def test_top_sigmoid_layer_drifts_to_zero_and_lower_layers_do_not(result):
    result, _ = result
    start, end = _rows(result, "sigmoid", "standard", 0), _rows(result, "sigmoid", "standard", QUICK.steps)
    assert abs(start[-1]["act_mean"] - 0.5) < 0.05
    assert end[-1]["act_mean"] < 0.5 * start[-1]["act_mean"]  # measured: 0.50 → ~0.2 in 900 steps
    assert all(0.4 < r["act_mean"] < 0.7 for r in end[:-1])
    assert end[-1]["test_acc"] < 0.15  # chance on 10 classes: learning waits for the top layer
    assert result.claims[0].verdict in ("holds", "holds with conditions")


def test_top_sigmoid_drift_reproduces_in_plain_torch():
    """An independent loop (own batches) shows the same drift of the top layer's mean, not of the others."""
    data = mnist1d()
    net = _plain_net(nn.Sigmoid, "standard", seed=1)
    opt = torch.optim.SGD(net.parameters(), lr=QUICK.lr)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        before = [a.mean().item() for a in _hidden_outputs(net, data.x_test[:300])]
    for _ in range(QUICK.steps):
        i = torch.randint(0, len(data.y_train), (QUICK.batch,), generator=g)
        opt.zero_grad()
        nn.functional.cross_entropy(net(data.x_train[i]), data.y_train[i]).backward()
        opt.step()
    with torch.no_grad():
        after = [a.mean().item() for a in _hidden_outputs(net, data.x_test[:300])]
    assert after[-1] < 0.6 * before[-1]
    assert all(abs(a - 0.5) < 0.2 for a in after[:-1])


def _hidden_outputs(net: nn.Sequential, x: torch.Tensor) -> list[torch.Tensor]:
    outs = []
    for module in net:
        x = module(x)
        if isinstance(module, nn.Sigmoid):
            outs.append(x)
    return outs


def test_backprop_gradient_variance_matches_plain_torch_and_theory(result):
    result, _ = result
    data = mnist1d()
    x, y = data.x_test[:300], data.y_test[:300]
    ratio = {}
    for init in ("standard", "normalised"):
        rows = _rows(result, "tanh", init, 0)
        ratio[init] = rows[0]["delta_var"] / rows[-1]["delta_var"]
        independent = _delta_ratio(_plain_net(nn.Tanh, init, seed=7), x, y)  # other weights: same statistics
        assert 0.5 < ratio[init] / independent < 2, (init, ratio[init], independent)
    # linear regime: each layer down multiplies the variance by fan_in·Var(W) — 1/3 standard, 1 normalised
    # (square layers) — and by tanh'² ≤ 1
    assert ratio["standard"] < 1.5 * (1 / 3) ** (QUICK.hidden - 1)
    assert ratio["normalised"] > 5 * ratio["standard"]
