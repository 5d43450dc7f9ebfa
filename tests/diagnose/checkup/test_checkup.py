"""checkup on the issue's scenarios: each verdict, and the numbers behind it checked against plain torch."""

from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gradient_doctor.diagnose import checkup
from gradient_doctor.diagnose.checkup.exploding import compounding
from gradient_doctor.diagnose.ranking import CATALOG
from tests.diagnose.checkup.test_models import (
    LastStep,
    PreNormTransformer,
    chain_reference,
    cnn,
    kaiming,
    mlp,
    normal_std,
    readout,
    time_reference,
    xavier,
)

RTOL = 1e-5


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture
def no_onednn():
    """oneDNN's LSTM on this CPU build is ~40x slower than the native kernel; the numbers are the same."""
    with warnings.catch_warnings():  # torch warns about oneDNN TF32 on Intel GPUs when the flags are set
        warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")
        with torch.backends.mkldnn.flags(enabled=False):
            yield


def kinds(diag, severities=("warning", "critical")) -> dict[tuple[str, str], object]:
    return {(f.kind, f.scope): f for f in diag.findings if f.severity in severities}


def assert_catalog(diag) -> None:
    for finding in diag.findings:
        assert finding.remedies and set(finding.remedies) <= set(CATALOG), finding


def assert_chain_numbers(diag, model: nn.Sequential, ref: dict) -> None:
    """Every per-layer number of a Sequential against the reference; layers are its modules in order."""
    layers = diag.measurement.layers
    assert [layer.name for layer in layers] == [str(i) for i in range(len(model))]
    for key in ("delta_in", "delta_out", "rms_in", "rms_out", "grad_norm"):
        np.testing.assert_allclose([getattr(layer, key) for layer in layers], ref[key], rtol=RTOL, err_msg=key)


# --- the numbers ---------------------------------------------------------------------------------------------

def test_layer_numbers_match_plain_torch_with_inplace_relu_and_a_task_loss():
    model = mlp(6, 32, lambda: nn.ReLU(inplace=True))
    x, y = torch.randn(16, 32), torch.randint(0, 10, (16,))
    diag = checkup(model, x, y, nn.CrossEntropyLoss())
    assert_chain_numbers(diag, model, chain_reference(model, x, lambda out: F.cross_entropy(out, y)))
    assert diag.measurement.loss_source == "loss_fn"


def test_readout_loss_numbers_and_the_budget_telescopes():
    model = mlp(10, 32, nn.Sigmoid)
    x = torch.randn(16, 32)
    diag = checkup(model, x, seed=3)
    ref = chain_reference(model, x, lambda out: readout(out, 3))
    assert_chain_numbers(diag, model, ref)
    b = diag.measurement.budget
    # from where the first weights get their gradient (the first Linear's output) to the output
    assert b.end_to_end == pytest.approx(ref["delta_out"][0] / ref["delta_out"][-1], rel=RTOL)
    gains = np.log10(np.array(ref["delta_in"]) / np.array(ref["delta_out"]))
    assert b.by_role["activation"] == pytest.approx(gains[1::2].sum(), rel=RTOL)  # the Sigmoids
    assert b.by_role["weights"] == pytest.approx(gains[2::2].sum(), rel=RTOL)  # the Linears after the first
    assert b.remainder == pytest.approx(0.0, abs=1e-9)  # a plain chain: the layers' gains are the whole budget
    assert b.depth == 10
    assert b.xi == pytest.approx(10 / (2 * abs(math.log(b.end_to_end))), rel=RTOL)
    sigmoid = diag.measurement.layers[1]
    out = ref["outputs"][0]
    mean_derivative = float((torch.sigmoid(out) * (1 - torch.sigmoid(out))).mean())  # measured σ', ≤ 0.25
    assert sigmoid.gain < 0.25 and sigmoid.gain == pytest.approx(mean_derivative, rel=0.2)


def test_gain_through_a_module_on_a_skip_connection_is_its_own():
    class Residual(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = nn.Linear(16, 16)

        def forward(self, x):
            return x + self.inner(x)

    model = nn.Sequential(nn.Linear(8, 16), Residual(), nn.Linear(16, 4))
    x = torch.randn(5, 8)
    diag = checkup(model, x)
    h = model[0](x)
    inner_out = model[1].inner(h)
    out = model[2](h + inner_out)
    (g_inner,) = torch.autograd.grad(readout(out, 0), inner_out)
    inner = next(layer for layer in diag.measurement.layers if layer.name == "1.inner")
    assert inner.delta_out == pytest.approx(float(g_inner.double().norm()), rel=RTOL)
    through_inner = g_inner @ model[1].inner.weight  # W^T δ: only what flows through the Linear
    assert inner.delta_in == pytest.approx(float(through_inner.detach().double().norm()), rel=RTOL)


def test_a_module_called_twice_pools_its_calls_and_trials_pool_readouts():
    shared = nn.Linear(8, 8)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    x = torch.randn(6, 8)
    diag = checkup(model, x, trials=2, seed=5)
    expected = 0.0
    for seed in (5, 6):
        first = shared(x)
        second = shared(torch.tanh(first))
        grads = torch.autograd.grad(readout(second, seed), (first, second))
        expected += sum(float(g.double().square().sum()) for g in grads)
    layer = diag.measurement.layers[0]
    assert layer.name == "0" and layer.delta_out == pytest.approx(math.sqrt(expected), rel=RTOL)


def test_saturated_and_dead_fractions_match_plain_torch():
    sat = mlp(3, 32, nn.Sigmoid, normal_std(8.0))
    x = torch.randn(64, 32)
    diag = checkup(sat, x)
    outputs = chain_reference(sat, x, lambda out: readout(out, 0))["outputs"]
    for i in (1, 3, 5):
        y = outputs[i]
        expected = float(((y <= 0.01) | (y >= 0.99)).double().mean())
        assert diag.measurement.layers[i].saturated_frac == pytest.approx(expected, abs=1e-12)
    assert ("saturated_activation", "depth") in kinds(diag)

    dead = mlp(3, 32, nn.ReLU, lambda lin: nn.init.constant_(lin.bias, -1.0))
    diag = checkup(dead, x)
    outputs = chain_reference(dead, x, lambda out: readout(out, 0))["outputs"]
    for i in (1, 3, 5):
        expected = float((outputs[i] == 0).all(dim=0).double().mean())
        assert diag.measurement.layers[i].dead_frac == pytest.approx(expected, abs=1e-12)


# --- the acceptance scenarios -----------------------------------------------------------------------------

def test_deep_sigmoid_mlp_is_critically_vanishing_through_its_activations():
    diag = checkup(mlp(10, 32, nn.Sigmoid), torch.randn(32, 32))
    finding = kinds(diag)[("vanishing_gradient", "depth")]
    assert finding.severity == "critical" and not diag.healthy
    assert finding.evidence["mechanism"] == "activation"
    assert finding.remedies[0] == "swap_activation:relu"
    assert all(int(name) % 2 == 1 for name in finding.layers)  # the Sigmoids lose the most
    assert_catalog(diag)


def test_shallow_tanh_mlp_with_xavier_init_is_healthy():
    diag = checkup(mlp(2, 32, nn.Tanh, xavier), torch.randn(32, 32))
    assert diag.healthy, diag


def test_deep_relu_mlp_at_default_init_vanishes_and_he_init_comes_first():
    diag = checkup(mlp(20, 32, nn.ReLU), torch.randn(32, 32))
    finding = kinds(diag)[("vanishing_gradient", "depth")]
    assert finding.remedies[0] == "he_init"
    assert finding.evidence["mechanism"] == "weights"
    assert diag.measurement.budget.end_to_end < 1e-5  # PyTorch's default Linear init is not He init
    assert_catalog(diag)


def test_deep_relu_mlp_with_kaiming_init_is_healthy():
    diag = checkup(mlp(20, 32, nn.ReLU, kaiming), torch.randn(32, 32))
    assert diag.healthy, diag


def test_deep_tanh_mlp_with_large_weights_explodes_backward():
    diag = checkup(mlp(30, 32, nn.Tanh, normal_std(2.5)), torch.randn(32, 32))
    finding = kinds(diag)[("exploding_gradient", "depth")]
    assert finding.evidence["backward"] is True
    assert diag.measurement.budget.end_to_end > 70
    assert finding.remedies[0] == "xavier_init"
    assert_catalog(diag)


def test_relu_mlp_with_variance_3_over_fan_in_explodes_forward_and_backward():
    diag = checkup(mlp(30, 32, nn.ReLU, normal_std(math.sqrt(3.0))), torch.randn(32, 32))
    evidence = kinds(diag)[("exploding_gradient", "depth")].evidence
    assert evidence["backward"] is True and evidence["forward"] is True


def test_growth_compounds_over_layers_and_restarts_at_normalisation():
    model = mlp(30, 32, nn.ReLU, normal_std(math.sqrt(3.0)))
    x = torch.randn(32, 32)
    growth, run = compounding(checkup(model, x).measurement.layers, lambda layer: layer.forward_gain)
    ref = chain_reference(model, x, lambda out: readout(out, 0))
    gains = np.array(ref["rms_out"]) / np.array(ref["rms_in"])
    start, end = int(run[0]), int(run[-1])
    assert growth == pytest.approx(float(np.prod(gains[start:end + 1])), rel=RTOL)
    assert growth >= max(np.prod(gains[i:j + 1]) for i in range(len(gains)) for j in range(i, len(gains))) * (1 - RTOL)

    tiny = nn.Sequential(nn.Linear(16, 16), nn.LayerNorm(16), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 4))
    with torch.no_grad():
        tiny[0].weight.mul_(1e-3)  # the LayerNorm scales its input up ~1000x: a reset, not a compounding growth
        tiny[0].bias.mul_(1e-3)
    diag = checkup(tiny, torch.randn(32, 16))
    assert diag.measurement.layers[1].forward_gain > 100
    assert compounding(diag.measurement.layers, lambda layer: layer.forward_gain)[0] < 20 and diag.healthy, diag


def test_vanilla_rnn_vanishes_through_time_and_the_profile_matches_plain_torch():
    rnn = nn.RNN(4, 16)
    x = torch.randn(200, 4, 4)
    diag = checkup(LastStep(rnn), x, seed=2)
    finding = kinds(diag)[("vanishing_gradient", "time")]
    assert finding.layers == ["rnn"] and finding.remedies[0] == "to_lstm"
    profile = diag.measurement.recurrent[0]
    expected = time_reference(rnn, x, seed=2).numpy()
    measured = expected > 1e-30  # below that both are denormal or zero: compared exactly below
    np.testing.assert_allclose(profile.relative[measured], expected[measured], rtol=1e-4)
    assert (profile.relative[~measured] < 1e-29).all()
    back = expected[::-1][1:]
    assert profile.horizon == int(np.argmax(back < math.exp(-3))) and profile.horizon < 20
    assert_catalog(diag)


def test_lstm_at_default_init_vanishes_through_time(no_onednn):
    diag = checkup(LastStep(nn.LSTM(8, 32)), torch.randn(200, 8, 8))
    finding = kinds(diag)[("vanishing_gradient", "time")]
    assert finding.severity == "critical" and finding.remedies[0] == "forget_gate_bias"
    assert finding.evidence["first_step_ratio"] < 1.2e-7  # below float32 resolution


def test_time_profile_uses_the_initial_state_the_model_passed(no_onednn):
    class WithState(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(3, 8, num_layers=2)
            self.h0 = nn.Parameter(3 * torch.randn(2, 1, 8))  # large: it changes the profile by ~30 %

        def forward(self, x):
            out, _ = self.gru(x, hx=self.h0.expand(2, x.shape[1], 8).contiguous())
            return out[-1]

    model, x = WithState(), torch.randn(6, 4, 3)
    profile = checkup(model, x, seed=1).measurement.recurrent[0]
    x_leaf = x.clone().requires_grad_(True)
    out, _ = model.gru(x_leaf, model.h0.detach().expand(2, 4, 8).contiguous())
    (grad,) = torch.autograd.grad(readout(out[-1], 1), x_leaf)
    norms = grad.double().norm(dim=(1, 2))
    np.testing.assert_allclose(profile.relative, (norms / norms[-1]).numpy(), rtol=1e-4)
    assert profile.steps == 6 and profile.kind == "GRU"


@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_with_forget_gate_bias_2_does_not(no_onednn, batch_first):
    lstm = nn.LSTM(8, 32, batch_first=batch_first)
    with torch.no_grad():  # effective forget-gate bias b_ih + b_hh = 2 (gates are ordered i, f, g, o)
        lstm.bias_ih_l0[32:64].fill_(2.0)
        lstm.bias_hh_l0[32:64].zero_()
    x = torch.randn(8, 200, 8) if batch_first else torch.randn(200, 8, 8)
    diag = checkup(LastStep(lstm), x)
    assert ("vanishing_gradient", "time") not in kinds(diag)
    assert diag.healthy, diag
    profile = diag.measurement.recurrent[0]
    np.testing.assert_allclose(profile.relative, time_reference(lstm, x, seed=0).numpy(), rtol=1e-4)
    assert profile.relative[0] > 1e-6  # two orders above float32 resolution across seeds at these sizes


def test_cnn_with_batch_norm_is_healthy():
    diag = checkup(cnn(), torch.randn(8, 3, 16, 16))
    assert diag.healthy, diag


def test_pre_norm_transformer_encoder_is_healthy():
    diag = checkup(PreNormTransformer(), torch.randint(0, 100, (4, 16)))
    assert diag.healthy, diag
    assert diag.measurement.layers[0].name == "embed"


def test_relu_mlp_with_biases_minus_5_has_dead_units():
    model = mlp(4, 32, nn.ReLU, lambda lin: nn.init.constant_(lin.bias, -5.0))
    diag = checkup(model, torch.randn(32, 32))
    finding = kinds(diag)[("dead_units", "depth")]
    assert finding.severity == "critical" and "1" in finding.layers
    assert finding.evidence["dead_frac"]["1"] > 0.5
    assert_catalog(diag)


def test_infinite_weight_is_non_finite():
    model = mlp(3, 16, nn.ReLU)
    with torch.no_grad():
        model[2].weight[0, 0] = float("inf")
    diag = checkup(model, torch.randn(8, 16))
    finding = kinds(diag)[("non_finite", "depth")]
    assert finding.severity == "critical" and finding.layers == ["2"]
    assert finding.evidence["where"] == "weights"
    assert_catalog(diag)


def test_twenty_layer_mlp_checkup_takes_well_under_a_second():
    model, x = mlp(20, 64, nn.ReLU), torch.randn(32, 64)
    checkup(model, x)  # warm-up
    start = time.perf_counter()
    checkup(model, x)
    assert time.perf_counter() - start < 1.0


class ScaledBlock(nn.Module):
    """A Linear followed by a functional rescale: the rescale is no module checkup can attribute a gain to."""

    def __init__(self, width: int):
        super().__init__()
        self.linear = nn.Linear(width, width, bias=False)
        nn.init.orthogonal_(self.linear.weight)  # norm-preserving both ways: the layers themselves lose nothing

    def forward(self, x):
        return 0.05 * self.linear(x)


def test_a_loss_between_the_layers_is_said_to_be_unattributed_not_guessed():
    torch.manual_seed(0)
    model = nn.Sequential(*[ScaledBlock(16) for _ in range(5)])
    x = torch.randn(32, 16)
    # plain torch: the backward signal at the first block's output vs the last's, and the linear maps' own gains
    outputs = []
    hooks = [block.linear.register_forward_hook(lambda m, a, out: outputs.append(out)) for block in model]
    out = model(x)
    for h in hooks:
        h.remove()
    for o in outputs:
        o.retain_grad()
    readout = torch.randn_like(out)
    (out * readout).sum().backward()
    ratio = float(outputs[0].grad.norm() / outputs[-1].grad.norm())
    assert ratio < 1e-4  # 0.05 per block, four blocks above the first
    (finding,) = [f for f in checkup(model, x).findings if f.kind == "vanishing_gradient"]
    assert finding.evidence["mechanism"] == "unattributed"
    assert abs(finding.evidence["orders_lost_by_weights"]) < 0.1  # orthogonal maps: no loss of their own
    assert "cannot attribute" in finding.summary


def test_large_weights_behind_a_normaliser_are_neither_vanishing_nor_exploding():
    # a wide first layer at N(0, 5²) then LayerNorm: it grows its output ~40x and LayerNorm divides δ by as much
    # on the way back (scale invariance), so its weight gradient is small because its weights are large
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 256), nn.LayerNorm(256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(),
                        nn.Linear(64, 10))
    nn.init.normal_(net[0].weight, std=5.0)
    x = torch.randn(128, 64)
    h0 = net[0](x)
    h0.retain_grad()
    out = net[1:](h0)
    out.retain_grad()
    (out * torch.randn_like(out)).sum().backward()
    growth = float(h0.detach().pow(2).mean().sqrt() / x.pow(2).mean().sqrt())
    assert growth > 30 and float(h0.grad.norm() / out.grad.norm()) < 1e-2  # plain torch: the δ ratio the budget sees
    diag = checkup(net, x)
    assert {f.kind for f in diag.findings if f.severity != "info"} == set()
    # the same growth into a weight layer (no normaliser) is still an explosion of the forward scale
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64), nn.ReLU(), nn.Linear(64, 10))
    nn.init.normal_(plain[0].weight, std=5.0)
    exploding = [f for f in checkup(plain, x).findings if f.kind == "exploding_gradient"]
    assert exploding and exploding[0].severity != "info" and exploding[0].evidence["forward"]
